/* process/segv: a write through a NULL pointer kills the process with SIGSEGV
 * (WIFSIGNALED, WTERMSIG == 11).  A synchronous fault is forced even on pid 1
 * of a pid namespace, so under `rvisor do` (where this program is pid 1) the
 * rvisor process must be reported killed by SIGSEGV too.
 *
 * Unlike the other programs this one does not exit normally: the differential
 * test compares the termination signal (and the line printed before the
 * fault). */
#include "../common.h"

#include <sys/resource.h>

int main(void)
{
    test_init();
    /* No core file in the current directory, whatever core_pattern says
     * (the result is not printed: it does not matter under the sandbox). */
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core);

    /* Both volatile: the pointer so that the compiler cannot see it is NULL
     * (and turn the store into a trap instruction, i.e. SIGILL), the target
     * so that the store is not dropped as dead. */
    volatile int *volatile target = NULL;
    printf("writing through NULL\n");
    fflush(stdout);
    *target = 42;
    printf("FATAL: still alive after writing through NULL\n");
    return 0;
}
