/* stream TOTAL MESSAGE: send TOTAL bytes over one TCP connection on 127.0.0.1,
 * in send() calls of MESSAGE bytes, from a sender thread; the main thread
 * receives them into a 1 MiB buffer.  Prints "RESULT bytes=N seconds=S cpu=C":
 * the time it took, and the CPU time both threads used (clock()).
 * The same program as socklab.measure.stream_python() in C, and as lesson 12's
 * `%%c stream` cell. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BIG (1 << 20)

struct job {
    int fd;
    long count;
    size_t message;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *sender(void *arg)
{
    struct job *job = arg;
    char *data = calloc(1, job->message);
    if (data == NULL)
        die("calloc");
    for (long i = 0; i < job->count; i++) {
        size_t sent = 0;
        while (sent < job->message) { /* send() may send less: go on */
            ssize_t n = send(job->fd, data + sent, job->message - sent, 0);
            if (n < 0)
                die("send");
            sent += (size_t)n;
        }
    }
    shutdown(job->fd, SHUT_WR); /* the receiver's recv() returns 0 */
    free(data);
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char *argv[])
{
    alarm(120); /* watchdog */
    if (argc != 3) {
        fprintf(stderr, "usage: stream TOTAL MESSAGE\n");
        return 2;
    }
    long total = atol(argv[1]);
    size_t message = (size_t)atol(argv[2]);
    if (total <= 0 || message == 0) {
        fprintf(stderr, "TOTAL and MESSAGE must be positive\n");
        return 2;
    }
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr *address = (struct sockaddr *)&addr;
    if (listener < 0 || bind(listener, address, sizeof addr) < 0
        || listen(listener, 1) < 0
        || getsockname(listener, address, &len) < 0)
        die("listener");
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || connect(client, address, sizeof addr) < 0)
        die("connect");
    int server = accept(listener, NULL, NULL);
    if (server < 0)
        die("accept");
    close(listener);

    struct job job = {client, total / (long)message, message};
    static char buffer[BIG];
    long received = 0;
    pthread_t thread;
    double started = now();
    clock_t cpu_started = clock();
    if (pthread_create(&thread, NULL, sender, &job) != 0)
        die("pthread_create");
    ssize_t n;
    while ((n = recv(server, buffer, sizeof buffer, 0)) > 0)
        received += n;
    double elapsed = now() - started;
    double cpu = (double)(clock() - cpu_started) / CLOCKS_PER_SEC;
    if (n < 0)
        die("recv");
    pthread_join(thread, NULL);
    if (received != job.count * (long)message) {
        fprintf(stderr, "received %ld bytes of %ld\n", received,
                job.count * (long)message);
        return 1;
    }
    printf("RESULT bytes=%ld seconds=%.6f cpu=%.6f\n", received, elapsed, cpu);
    close(client);
    close(server);
    return 0;
}
