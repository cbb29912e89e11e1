/* bench/c/echo_client.c: the C floor for the echo workload. C connections, each sends
 * SIZE bytes and waits for the SIZE-byte echo, TOTAL round trips in all (epoll, one
 * thread). Prints: ops=<n> elapsed=<s> cpu=<s>  (cpu = user+sys of this process).
 * Usage: echo_client PORT CONCURRENCY TOTAL SIZE */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) {
  struct rusage u; getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: echo_client PORT CONCURRENCY TOTAL SIZE\n"); return 2; }
  int port = atoi(argv[1]), c = atoi(argv[2]), size = atoi(argv[4]);
  long total = atol(argv[3]), started = 0, done = 0;
  char msg[65536], buf[65536];
  memset(msg, 'x', sizeof msg);
  int ep = epoll_create1(0), one = 1;
  int *got = calloc(c, sizeof(int)), *fds = calloc(c, sizeof(int));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  double t0 = now(), c0 = cpu();
  for (int i = 0; i < c; ++i) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    if (started < total) { write(fds[i], msg, size); ++started; }
  }
  struct epoll_event evs[256];
  while (done < total) {
    int n = epoll_wait(ep, evs, 256, 10000);
    if (n <= 0) { fprintf(stderr, "stalled\n"); return 1; }
    for (int k = 0; k < n; ++k) {
      int i = evs[k].data.u32;
      ssize_t r = read(fds[i], buf, size - got[i]);
      if (r <= 0) { fprintf(stderr, "server closed\n"); return 1; }
      got[i] += r;
      if (got[i] < size) continue;
      got[i] = 0;
      ++done;
      if (started < total) { write(fds[i], msg, size); ++started; }
    }
  }
  printf("ops=%ld elapsed=%.6f cpu=%.6f\n", done, now() - t0, cpu() - c0);
  return 0;
}
