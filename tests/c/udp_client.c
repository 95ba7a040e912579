/* udp_client.c -- send datagrams of the given sizes, check each echo.
 *
 * Usage: udp_client PORT SIZE...     e.g. udp_client 5000 0 1 65507
 * Each datagram is filled with a pattern; the reply must be the same bytes.
 * Prints "SIZE ok" or "SIZE bad" per datagram; waits at most 2 s for each.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: udp_client PORT SIZE...\n");
        return 2;
    }
    alarm(30);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval limit = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    struct sockaddr_in server = {.sin_family = AF_INET};
    server.sin_port = htons((unsigned short)atoi(argv[1]));
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static char out[65536], in[65536];
    for (int i = 2; i < argc; i++) {
        size_t size = (size_t)atol(argv[i]);
        for (size_t j = 0; j < size; j++)
            out[j] = (char)(j * 7 + (size_t)i);
        if (sendto(fd, out, size, 0, (struct sockaddr *)&server, sizeof server) < 0) {
            perror("sendto");
            return 1;
        }
        ssize_t n = recvfrom(fd, in, sizeof in, 0, NULL, NULL);
        int same = n == (ssize_t)size && memcmp(in, out, size) == 0;
        printf("%zu %s\n", size, same ? "ok" : "bad");
    }
    close(fd);
    return 0;
}
