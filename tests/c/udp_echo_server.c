/* udp_echo_server.c -- answer every datagram with the same datagram.
 *
 * Binds 127.0.0.1 port 0, prints "LISTENING <port>" once bound, and has an
 * alarm() watchdog (30 s) so it never outlives the test that started it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    alarm(30);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        perror("socket/bind");
        return 1;
    }
    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    static char buf[65536];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t peerlen = sizeof peer; /* value-result: reset before every call */
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &peerlen);
        if (n < 0) {
            perror("recvfrom");
            return 1;
        }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, peerlen);
    }
}
