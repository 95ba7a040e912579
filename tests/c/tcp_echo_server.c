/* tcp_echo_server.c -- a plain blocking TCP echo server, a thread per connection.
 *
 * Usage: tcp_echo_server [WATCHDOG_SECONDS]     (default 60)
 * Binds 127.0.0.1 port 0 (the kernel picks a free port) and prints
 * "LISTENING <port>" once connections can be made.  alarm() ends it after the
 * watchdog time whatever happens, so it can never outlive its test.
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

static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static __thread char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* 0: the peer closed its side; < 0: an error such as a reset */
            break;
        for (ssize_t sent = 0; sent < n;) { /* send() may take only part */
            ssize_t m = send(fd, buf + sent, (size_t)(n - sent), 0);
            if (m < 0 && errno == EINTR)
                continue;
            if (m < 0)
                goto done;
            sent += m;
        }
    }
done:
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    alarm(argc > 1 ? (unsigned)atoi(argv[1]) : 60);
    signal(SIGPIPE, SIG_IGN); /* a vanished peer: send() fails with EPIPE instead */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(lfd, SOMAXCONN) < 0 || getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
        perror("socket/bind/listen");
        return 1;
    }
    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue; /* EINTR, ECONNABORTED: try again */
        pthread_t thread;
        if (pthread_create(&thread, NULL, serve_connection, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(thread);
    }
}
