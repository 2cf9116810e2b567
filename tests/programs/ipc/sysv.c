/* ipc/sysv: System V IPC — message queues (types, MSG_EXCEPT, negative
 * types, IPC_NOWAIT, E2BIG and MSG_NOERROR, a blocked receiver woken by
 * another process, IPC_STAT counters), semaphore sets (GETVAL/SETVAL/
 * GETALL/SETALL, a blocked semop released by a child, SEM_UNDO undone at
 * exit, IPC_NOWAIT and semtimedop timeouts, ERANGE) and shared memory
 * (a segment shared with a forked child, nattch, IPC_RMID while attached,
 * shmdt errors), plus the get/ctl errors. Every object is removed. */
#include "../common.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>

struct msg {
    long mtype;
    char text[32];
};

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

static void msgs(void)
{
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    MUST(q);
    struct msg m = {.mtype = 2, .text = "two"};
    show("msgsnd type 2", msgsnd(q, &m, 4, 0));
    m.mtype = 1;
    strcpy(m.text, "one");
    show("msgsnd type 1", msgsnd(q, &m, 4, 0));
    m.mtype = 5;
    strcpy(m.text, "five-long-text");
    show("msgsnd type 5", msgsnd(q, &m, 15, 0));
    m.mtype = 0;
    expect_err("msgsnd type 0", msgsnd(q, &m, 4, 0));
    struct msqid_ds ds;
    MUST(msgctl(q, IPC_STAT, &ds));
    printf("qnum %lu cbytes %lu\n", (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes);
    struct msg r;
    show("msgrcv type 1", msgrcv(q, &r, sizeof r.text, 1, 0));
    printf("got %ld %s\n", r.mtype, r.text);
    show("msgrcv except 2", msgrcv(q, &r, sizeof r.text, 2, MSG_EXCEPT));
    printf("got %ld %s\n", r.mtype, r.text);
    expect_err("msgrcv none of type 9", msgrcv(q, &r, sizeof r.text, 9, IPC_NOWAIT));
    m.mtype = 7;
    strcpy(m.text, "seven-long");
    MUST(msgsnd(q, &m, 11, 0));
    expect_err("msgrcv too small", msgrcv(q, &r, 4, 7, 0));
    show("msgrcv MSG_NOERROR", msgrcv(q, &r, 4, 7, MSG_NOERROR));
    printf("truncated: %.4s\n", r.text);
    show("msgrcv lowest type <= 3", msgrcv(q, &r, sizeof r.text, -3, 0));
    printf("got %ld %s\n", r.mtype, r.text);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        struct msg w = {.mtype = 3, .text = "late"};
        msgsnd(q, &w, 5, 0);
        _exit(0);
    }
    show("blocked msgrcv woken", msgrcv(q, &r, sizeof r.text, 0, 0));
    printf("got %ld %s\n", r.mtype, r.text);
    waitpid(c, NULL, 0);
    show("msgctl IPC_RMID", msgctl(q, IPC_RMID, NULL));
    expect_err("msgsnd to removed queue", msgsnd(q, &m, 4, 0));
    expect_err("msgget missing key", msgget(0x7e57c0de, 0600));
}

static void sems(void)
{
    int s = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    MUST(s);
    show("GETVAL fresh", semctl(s, 0, GETVAL));
    show("SETVAL 5", semctl(s, 1, SETVAL, (union semun){.val = 5}));
    expect_err("SETVAL too big", semctl(s, 1, SETVAL, (union semun){.val = 40000}));
    unsigned short all[3] = {1, 2, 3};
    show("SETALL", semctl(s, 0, SETALL, (union semun){.array = all}));
    unsigned short got[3];
    show("GETALL", semctl(s, 0, GETALL, (union semun){.array = got}));
    printf("values %d %d %d\n", got[0], got[1], got[2]);
    struct sembuf take = {.sem_num = 0, .sem_op = -2, .sem_flg = IPC_NOWAIT};
    expect_err("semop would block", semop(s, &take, 1));
    struct timespec ts = {0, 50 * 1000 * 1000};
    take.sem_flg = 0;
    expect_err("semtimedop times out", semtimedop(s, &take, 1, &ts));
    struct sembuf bad = {.sem_num = 9, .sem_op = 1};
    expect_err("semop bad sem_num", semop(s, &bad, 1));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        struct sembuf give = {.sem_num = 0, .sem_op = 1};
        semop(s, &give, 1);
        _exit(0);
    }
    show("blocked semop released", semop(s, &take, 1));
    waitpid(c, NULL, 0);
    show("GETVAL after", semctl(s, 0, GETVAL));
    c = fork();
    if (c == 0) {
        struct sembuf undo = {.sem_num = 2, .sem_op = -3, .sem_flg = SEM_UNDO};
        semop(s, &undo, 1);
        printf("child sees %d\n", semctl(s, 2, GETVAL));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("SEM_UNDO restored", semctl(s, 2, GETVAL));
    struct sembuf zero = {.sem_num = 0, .sem_op = 0, .sem_flg = IPC_NOWAIT};
    show("wait-for-zero on zero", semop(s, &zero, 1));
    struct semid_ds ds;
    MUST(semctl(s, 0, IPC_STAT, (union semun){.buf = &ds}));
    printf("nsems %lu mode %o\n", (unsigned long)ds.sem_nsems, ds.sem_perm.mode & 0777);
    show("semctl IPC_RMID", semctl(s, 0, IPC_RMID));
    expect_err("GETVAL removed", semctl(s, 0, GETVAL));
    expect_err("semget nsems 0 new", semget(IPC_PRIVATE, 0, IPC_CREAT | 0600));
}

static void shms(void)
{
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    MUST(id);
    char *p = shmat(id, NULL, 0);
    MUST(p == (void *)-1 ? -1 : 0);
    strcpy(p, "parent");
    struct shmid_ds ds;
    MUST(shmctl(id, IPC_STAT, &ds));
    printf("size %lu nattch %lu\n", (unsigned long)ds.shm_segsz, (unsigned long)ds.shm_nattch);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        struct shmid_ds d;
        shmctl(id, IPC_STAT, &d);
        printf("child nattch %lu sees %s\n", (unsigned long)d.shm_nattch, p);
        strcpy(p + 100, "child wrote");
        char *q = shmat(id, NULL, SHM_RDONLY);
        printf("second attach sees %s\n", q == (void *)-1 ? "error" : q + 100);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent sees %s\n", p + 100);
    MUST(shmctl(id, IPC_STAT, &ds));
    printf("nattch after child exit %lu\n", (unsigned long)ds.shm_nattch);
    show("IPC_RMID while attached", shmctl(id, IPC_RMID, NULL));
    MUST(shmctl(id, IPC_STAT, &ds));
    printf("still there: nattch %lu dest %d\n", (unsigned long)ds.shm_nattch,
           !!(ds.shm_perm.mode & SHM_DEST));
    expect_err("shmdt not an attach address", shmdt(p + 4096));
    show("shmdt", shmdt(p));
    expect_err("IPC_STAT after last detach", shmctl(id, IPC_STAT, &ds));
    expect_err("shmget too small", shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600));
    expect_err("shmat bad id", (long)shmat(-5, NULL, 0));
}

int main(void)
{
    test_init();
    msgs();
    sems();
    shms();
    return 0;
}
