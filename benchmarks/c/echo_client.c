/* echo_client.c -- the one client the benchmark runs against both servers.
 *
 * Usage:
 *   echo_client PORT bulk MIB      throughput: send MIB MiB, read the echo back
 *   echo_client PORT rtt COUNT     latency: COUNT round trips of a 32-byte message
 *
 * Connects to 127.0.0.1:PORT.  Prints one line, "RESULT key=value ...", that
 * echo_bench.py parses; anything wrong goes to stderr with exit status 1.
 *
 * Bulk: a writer thread sends 64 KiB chunks and then shuts down its sending
 * side, while the main thread reads the echo until end-of-stream.  Reading and
 * writing at the same time matters: a client that wrote everything first would
 * deadlock once the socket buffers on both sides are full, because the server
 * blocks in send() and stops reading.
 *
 * Round trip: TCP_NODELAY is on, or Nagle's algorithm could hold small writes
 * back; each message is read back in full and compared before the next is sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536     /* bulk: bytes per send() and per recv() */
#define MSG_SIZE 32     /* round trip: bytes per message */
#define WARMUP 200      /* round trips done before timing starts */
#define WATCHDOG 300    /* seconds; alarm() ends a client that hangs */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_loopback(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Read exactly len bytes; end-of-stream before that is an error. */
static void recv_exact(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("recv");
        if (n == 0) {
            fprintf(stderr, "recv: the server closed in the middle of a message\n");
            exit(1);
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* ---- bulk throughput ---------------------------------------------------- */

struct writer_args {
    int fd;
    long long total; /* bytes to send */
};

static void *writer(void *arg)
{
    struct writer_args *w = arg;
    static char chunk[CHUNK];
    memset(chunk, 'x', sizeof chunk);
    for (long long left = w->total; left > 0; left -= CHUNK)
        send_all(w->fd, chunk, left < CHUNK ? (size_t)left : CHUNK);
    /* End-of-stream for the server: its recv() returns 0, it closes, and then
     * our reader sees end-of-stream too. */
    if (shutdown(w->fd, SHUT_WR) < 0)
        die("shutdown");
    return NULL;
}

static int bulk(unsigned port, long long mib)
{
    long long total = mib * 1024 * 1024;
    static char buf[CHUNK];
    int fd = connect_loopback(port);

    double start = now();
    struct writer_args w = {fd, total};
    pthread_t tid;
    if (pthread_create(&tid, NULL, writer, &w) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    long long received = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("recv");
        if (n == 0)
            break;
        received += n;
    }
    double seconds = now() - start;
    pthread_join(tid, NULL);
    close(fd);

    if (received != total) {
        fprintf(stderr, "bulk: sent %lld bytes but %lld came back\n", total, received);
        return 1;
    }
    printf("RESULT mode=bulk bytes=%lld seconds=%.6f mib_per_s=%.1f\n",
           received, seconds, (double)received / (1024.0 * 1024.0) / seconds);
    return 0;
}

/* ---- small-message round trip ------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int round_trips(unsigned port, long count)
{
    int fd = connect_loopback(port);
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("setsockopt TCP_NODELAY");

    char msg[MSG_SIZE], reply[MSG_SIZE];
    double *took = malloc((size_t)count * sizeof *took);
    if (took == NULL)
        die("malloc");

    double total = 0;
    for (long i = -WARMUP; i < count; i++) {
        /* A different message each time, so a stale reply would be noticed. */
        memset(msg, 'a' + (int)((i + WARMUP) % 26), sizeof msg);
        double t0 = now();
        send_all(fd, msg, sizeof msg);
        recv_exact(fd, reply, sizeof reply);
        double dt = now() - t0;
        if (memcmp(msg, reply, sizeof msg) != 0) {
            fprintf(stderr, "rtt: the reply differs from the message\n");
            return 1;
        }
        if (i >= 0) {
            took[i] = dt;
            total += dt;
        }
    }
    close(fd);

    qsort(took, (size_t)count, sizeof *took, cmp_double);
    printf("RESULT mode=rtt count=%ld size=%d mean_us=%.2f p50_us=%.2f p99_us=%.2f\n",
           count, MSG_SIZE, total / (double)count * 1e6,
           took[count / 2] * 1e6, took[count * 99 / 100] * 1e6);
    free(took);
    return 0;
}

int main(int argc, char **argv)
{
    alarm(WATCHDOG);
    signal(SIGPIPE, SIG_IGN); /* a server that dies shows up as EPIPE from send() */

    if (argc != 4) {
        fprintf(stderr, "usage: echo_client PORT bulk MIB | echo_client PORT rtt COUNT\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    long long n = atoll(argv[3]);
    if (port == 0 || port > 65535 || n <= 0) {
        fprintf(stderr, "echo_client: bad port or count\n");
        return 2;
    }
    if (strcmp(argv[2], "bulk") == 0)
        return bulk(port, n);
    if (strcmp(argv[2], "rtt") == 0)
        return round_trips(port, (long)n);
    fprintf(stderr, "echo_client: mode must be bulk or rtt\n");
    return 2;
}
