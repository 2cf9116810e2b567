/* process/exit_group: the program's own exit status comes from exit_group;
 * buffered output written before it is not lost, code after it never runs.
 * Expected: prints two lines and exits with status 3. */
#include "../common.h"

#include <sys/syscall.h>

int main(void)
{
    test_init();
    printf("before exit_group\n");
    /* a line without newline, flushed explicitly: exit_group skips stdio */
    printf("flushed tail");
    fflush(stdout);
    if (write(STDOUT_FILENO, "\n", 1) != 1)
        return 98;
    syscall(SYS_exit_group, 3);
    printf("NOT REACHED\n");
    return 99;
}
