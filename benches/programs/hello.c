/* The small C program benches/suite.rs compiles inside each container. */
#include <stdio.h>

int main(void)
{
    printf("hello from the sandbox\n");
    return 0;
}
