/* print_maps FILE (symbols_test.py): writes "new\n" to FILE through the shim
 * (so its code paths run), then prints this process's memory map: a C
 * program under the preload object must not map a C++ runtime. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "new\n", 4) != 4 || close(fd) != 0) {
        perror(argv[1]);
        return 1;
    }
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) {
        perror("maps");
        return 1;
    }
    char line[4096];
    while (fgets(line, sizeof line, maps)) fputs(line, stdout);
    return fclose(maps) != 0;
}
