// Linux epoll (part of glibc; Swift's Glibc module does not include <sys/epoll.h>).
// Typed shims so Swift never touches `struct epoll_event`, which is packed on x86_64.
#ifndef CEPOLL_SHIM_H
#define CEPOLL_SHIM_H
#include <sys/epoll.h>
#include <errno.h>
#include <stdint.h>

static const uint32_t cepoll_in = EPOLLIN;
static const uint32_t cepoll_rdhup = EPOLLRDHUP;
static const uint32_t cepoll_hup = EPOLLHUP;
static const uint32_t cepoll_err = EPOLLERR;
static const uint32_t cepoll_oneshot = EPOLLONESHOT;

/// epoll_create1(EPOLL_CLOEXEC).
static inline int cepoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

/// Registers fd with `events`; the event data is the fd itself.
static inline int cepoll_add(int epfd, int fd, uint32_t events) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/// Re-arms a registration (a one-shot one that fired stays registered, disarmed), or
/// registers fd when it is not: one epoll_ctl for a connection that parks again.
static inline int cepoll_arm(int epfd, int fd, uint32_t events) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return -1;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static inline int cepoll_del(int epfd, int fd) {
    struct epoll_event ev = {0};  // non-NULL for kernels before 2.6.9
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

/// epoll_wait into two plain arrays (fds[i], events[i]); at most `max` (≤ 1024) entries.
static inline int cepoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buffer[1024];
    if (max > 1024) max = 1024;
    int n = epoll_wait(epfd, buffer, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = buffer[i].data.fd;
        events[i] = buffer[i].events;
    }
    return n;
}
#endif
