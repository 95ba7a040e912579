/* echo_server.c -- the baseline: a plain blocking TCP echo server in C.
 *
 * It is built the way socklab.TCPEchoServer is built, so that the benchmark
 * compares the language and the library, not the design:
 *   - binds 127.0.0.1 port 0 (the kernel picks a free port), listens;
 *   - one thread per connection, each a blocking recv() -> send-all loop
 *     with a 64 KiB buffer (socklab's echo_handler calls recv(65536)).
 *
 * Usage: echo_server [watchdog_seconds] < pipe
 * Prints "LISTENING <port>" on stdout, flushed, once the kernel queues
 * connections for it; the benchmark reads that line instead of sleeping.
 *
 * It must never outlive the benchmark, so it exits
 *   - when its stdin reaches end-of-file: the benchmark holds the other end of
 *     that pipe, and the kernel closes it when the benchmark ends, however it
 *     ends (even by SIGKILL);
 *   - after watchdog_seconds (default 600) in any case: alarm().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSIZE 65536

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* send() may send fewer bytes than asked: loop until all are sent. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
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

static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(BUFSIZE); /* on the heap: thread stacks are small */
    if (buf == NULL)
        die("malloc");
    for (;;) {
        ssize_t n = recv(fd, buf, BUFSIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* 0: the peer closed; < 0: reset or error */
            break;
        if (send_all(fd, buf, (size_t)n) < 0)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

/* Read stdin until end-of-file, then end the whole process. */
static void *watch_stdin(void *arg)
{
    (void)arg;
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0)
        ;
    _exit(0);
}

int main(int argc, char **argv)
{
    unsigned watchdog = argc > 1 ? (unsigned)atoi(argv[1]) : 600;
    alarm(watchdog); /* SIGALRM's default action ends the process */

    /* A peer that closes early must make send() fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_stdin, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    addr.sin_port = 0;                             /* any free port */
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, SOMAXCONN) < 0)
        die("listen");

    socklen_t len = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
        die("getsockname");
    printf("LISTENING %u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept");
        }
        pthread_t tid;
        if (pthread_create(&tid, NULL, serve_connection, (void *)(intptr_t)fd) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            close(fd);
            continue;
        }
        pthread_detach(tid);
    }
}
