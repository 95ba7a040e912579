/* pipe_client.c -- send stdin to a TCP server, write what comes back to stdout.
 *
 * Usage: pipe_client PORT          (connects to 127.0.0.1:PORT)
 *
 * A writer thread sends while the main thread reads, so a reply larger than the
 * socket buffers cannot deadlock; after the last byte the writer calls
 * shutdown(SHUT_WR), the echo server sees EOF and closes, and our read loop ends.
 * alarm(30) is the watchdog: the test can never leave this running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_all(int fd, const char *buf, size_t len, int is_socket)
{
    while (len > 0) {
        ssize_t n = is_socket ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *send_stdin(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
        if (write_all(fd, buf, (size_t)n, 1) < 0) {
            perror("send");
            exit(1);
        }
    }
    shutdown(fd, SHUT_WR); /* "no more data": the server's recv() returns 0 */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pipe_client PORT\n");
        return 2;
    }
    alarm(30);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in server = {.sin_family = AF_INET};
    server.sin_port = htons((unsigned short)atoi(argv[1]));
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("connect");
        return 1;
    }
    pthread_t writer;
    pthread_create(&writer, NULL, send_stdin, &fd);
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        if (write_all(STDOUT_FILENO, buf, (size_t)n, 0) < 0)
            return 1;
    if (n < 0) {
        perror("recv");
        return 1;
    }
    pthread_join(writer, NULL);
    close(fd);
    return 0;
}
