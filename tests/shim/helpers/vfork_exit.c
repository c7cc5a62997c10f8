/* vfork_exit (programs_faults_test.sh): opens f (matched) and writes
 * "parent"; a vfork child calls _exit at once. The child's _exit must not
 * touch the parent's pending replacement: f.lock stays and stays locked; then
 * " more" and the close commit "parent more".
 * Exit: 0; 4 the lock file was removed; 5 the lock was released; 2, 3, 6, 7
 * a call failed. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int fd = open("f", O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, "parent", 6) != 6) return 2;
    pid_t pid = vfork();
    if (pid == 0) _exit(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) return 3;
    if (access("f.lock", F_OK) != 0) return 4;
    int probe = open("f.lock", O_RDONLY);
    if (probe < 0 || flock(probe, LOCK_EX | LOCK_NB) == 0) return 5;
    close(probe);
    if (write(fd, " more", 5) != 5) return 6;
    return close(fd) == 0 ? 0 : 7;
}
