/* misc/sched: getrusage, sched_yield, sched_getaffinity, sched_getscheduler,
 * getcpu. Prints booleans. */
#include "../common.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>

int main(void)
{
    test_init();
    /* getrusage */
    struct rusage ru;
    show("getrusage SELF", getrusage(RUSAGE_SELF, &ru));
    show_bool("maxrss > 0", ru.ru_maxrss > 0);
    show("getrusage CHILDREN", getrusage(RUSAGE_CHILDREN, &ru));
    expect_err("getrusage bad who", getrusage(42, &ru));

    /* scheduler odds and ends */
    show("sched_yield", sched_yield());
    cpu_set_t set;
    CPU_ZERO(&set);
    show_bool("sched_getaffinity ok", sched_getaffinity(0, sizeof set, &set) == 0);
    show_bool("at least one CPU in affinity mask", CPU_COUNT(&set) >= 1);
    show("sched_getscheduler", sched_getscheduler(0));
    unsigned cpu = 99999;
    show("getcpu", syscall(SYS_getcpu, &cpu, NULL, NULL));
    show_bool("cpu < 4096", cpu < 4096);
    printf("done\n");
    return 0;
}
