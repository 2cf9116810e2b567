/* file/create_race: processes racing to create one name in /tmp (the
 * rootfs overlay inside a sandbox). Each round, four children open the
 * same new name: with O_CREAT|O_EXCL exactly one wins and the others get
 * EEXIST; with O_CREAT|O_APPEND they all open one file, so that every
 * byte each of them appends is in it afterwards. */
#include "../common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define CHILDREN 4
#define ROUNDS 200

int main(void)
{
    test_init();
    char path[64];
    int excl_wins = 0, excl_eexist = 0, excl_other = 0, short_files = 0;
    for (int round = 0; round < ROUNDS; round++) {
        snprintf(path, sizeof path, "/tmp/create_race.%d", round);
        unlink(path);
        int ready[2];
        MUST(pipe(ready));
        pid_t kids[CHILDREN];
        for (int c = 0; c < CHILDREN; c++) {
            kids[c] = fork();
            if (kids[c] == 0) {
                char go;
                close(ready[1]);
                if (read(ready[0], &go, 1) != 0)
                    _exit(3);
                int excl = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
                int code = excl >= 0 ? 0 : errno == EEXIST ? 1 : 2;
                if (excl >= 0)
                    close(excl);
                /* Then all append to the file under a second name. */
                char appended[80];
                snprintf(appended, sizeof appended, "%s.log", path);
                int fd = open(appended, O_CREAT | O_WRONLY | O_APPEND, 0644);
                if (fd < 0 || write(fd, "x", 1) != 1)
                    code = 4;
                _exit(code);
            }
        }
        close(ready[0]);
        close(ready[1]); /* all children start at once */
        for (int c = 0; c < CHILDREN; c++) {
            int status;
            MUST(waitpid(kids[c], &status, 0));
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 9;
            if (code == 0)
                excl_wins++;
            else if (code == 1)
                excl_eexist++;
            else
                excl_other++;
        }
        char appended[80];
        snprintf(appended, sizeof appended, "%s.log", path);
        struct stat st;
        if (stat(appended, &st) != 0 || st.st_size != CHILDREN)
            short_files++;
        unlink(appended);
        unlink(path);
    }
    printf("O_EXCL winners per round: %s\n", excl_wins == ROUNDS ? "one" : "not one");
    printf("EEXIST for the others: %s\n", excl_eexist == ROUNDS * (CHILDREN - 1) ? "yes" : "no");
    printf("other outcomes: %d\n", excl_other);
    printf("rounds whose appended file lost bytes: %d\n", short_files);
    return 0;
}
