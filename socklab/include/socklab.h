/* socklab.h -- the course's few C helpers, written once and used by later lessons.
 *
 * Every %%c cell may `#include "socklab.h"`.  Each helper is a handful of lines
 * that an earlier lesson teaches; they live here so that later listings stay
 * short *and* correct (the idea of Stevens' unp.h and CS:APP's csapp.c).  They
 * follow the course's C discipline (docs/authoring.md): every call checked,
 * the failed call named, and nothing here ever exits -- the caller decides,
 * because a server must survive one bad client.
 *
 *   parse_port(text)            "8080" -> 8080; -1 unless a whole number 1..65535
 *   connect_to(host, port)      TCP client over getaddrinfo(): IPv4 or IPv6
 *   listen_on(host, port, n)    TCP listener over getaddrinfo(), SO_REUSEADDR
 *   announce_port(fd)           print "LISTENING <port>" for socklab's start()
 *   accept_client(fd, ...)      accept(), going on after the errors that end
 *                               only one connection (man 2 accept); -1 with
 *                               EAGAIN when a non-blocking listener has none
 *   send_all(fd, buf, len)      send() until all is sent; MSG_NOSIGNAL
 */
#ifndef SOCKLAB_H
#define SOCKLAB_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <unistd.h>

/* A port from text: the whole string must be a number from 1 to 65535.
 * atoi("80x") is 80 and atoi("70000") wraps when cast to unsigned short;
 * strtol with an end pointer and a range check refuses both. */
static inline int parse_port(const char *text)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > 65535)
        return -1;
    return (int)value;
}

/* Connect a TCP socket to host:port (port as text, e.g. "8080"): try each
 * address getaddrinfo() gives, IPv6 and IPv4 alike, until one answers.
 * Returns the connected socket, or -1 after printing why. */
static inline int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *found, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo %s %s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (ai = found; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0)
        fprintf(stderr, "connect %s %s: %s\n", host, port, strerror(saved));
    return fd;
}

/* A TCP socket listening on host:port ("0" lets the kernel pick the port). */
static inline int listen_on(const char *host, const char *port, int backlog)
{
    struct addrinfo hints = {0}, *found, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo %s %s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, one = 1;
    const char *failed = "socket"; /* the call that failed, named in the message */
    for (ai = found; ai != NULL; ai = ai->ai_next) {
        failed = "socket"; /* again: the address before may have failed in bind */
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        failed = "setsockopt SO_REUSEADDR";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0) {
            failed = "bind";
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                failed = "listen";
                if (listen(fd, backlog) == 0)
                    break;
            }
        }
        int saved = errno;
        close(fd);
        errno = saved;
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "%s %s %s: %s\n", failed, host, port, strerror(errno));
    freeaddrinfo(found);
    return fd;
}

/* Print "LISTENING <port>" (socklab's start() waits for it) and flush. */
static inline int announce_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        perror("getsockname");
        return -1;
    }
    in_port_t port = addr.ss_family == AF_INET6
        ? ((struct sockaddr_in6 *)&addr)->sin6_port
        : ((struct sockaddr_in *)&addr)->sin_port;
    printf("LISTENING %u\n", (unsigned)ntohs(port));
    return fflush(stdout) == 0 ? 0 : -1;
}

/* accept(), for a server that must outlive any one client.  man 2 accept:
 * errors of the *pending connection* (ECONNABORTED, EPROTO and the network
 * errors) and EINTR are reported and skipped.  Running out of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is reported and, after a pause so
 * that the loop does not spin, tried again -- by a blocking listener; a
 * non-blocking one (an event loop) gets -1 back, to serve its other clients
 * first.  Returns the new socket; or -1 with errno EAGAIN (non-blocking:
 * nobody is waiting), EMFILE and the like (non-blocking), or an error of the
 * listening socket itself (EBADF, EINVAL, ...), printed. */
static inline int accept_client(int listener, struct sockaddr *peer, socklen_t *peerlen)
{
    socklen_t room = peerlen != NULL ? *peerlen : 0;
    for (;;) {
        if (peerlen != NULL)
            *peerlen = room;
        int fd = accept(listener, peer, peerlen);
        if (fd >= 0)
            return fd;
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return -1;
        case EINTR:
        case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
        case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case ENETUNREACH:
        case EOPNOTSUPP:
            perror("accept (skipped)");
            continue;
        case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: {
            int saved = errno, flags = fcntl(listener, F_GETFL);
            perror("accept (pausing)");
            usleep(100 * 1000);
            if (flags >= 0 && (flags & O_NONBLOCK)) {
                errno = saved;
                return -1;
            }
            continue;
        }
        default:
            perror("accept");
            return -1;
        }
    }
}

/* send() until all len bytes are sent: send() may take fewer than asked.
 * MSG_NOSIGNAL: a peer that has gone gives EPIPE here, not a deadly SIGPIPE.
 * Returns 0, or -1 with errno set (EPIPE, ECONNRESET, ...). */
static inline int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif /* SOCKLAB_H */
