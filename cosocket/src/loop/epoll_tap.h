#pragma once
// What libevent does not pass on: whether the peer of a socket has shut down or reset.
//
// A TCP read that returns less than it asked for has emptied the kernel's queue, so the
// next read can wait for the next edge-triggered event instead of being tried and failing
// with EAGAIN (one syscall in three on a request/response connection; nginx saves it the
// same way). That is only safe when a FIN or RST that came with the data is known: its
// event has already been reported and no new edge will follow. epoll reports it
// (EPOLLRDHUP, EPOLLHUP, EPOLLERR), but libevent's epoll backend folds HUP/ERR into
// EV_READ|EV_WRITE and drops EPOLLRDHUP with them.
//
// So the process defines epoll_wait (the one libevent's loop calls, through the dynamic
// linker): it calls the kernel, notes which descriptors came back with one of those
// flags, and returns the events untouched. If the loop's calls do not come through here
// (another event backend, a static libevent), live() stays false and reads stay greedy.
namespace cosocket::epoll_tap {

// The event loop's epoll_wait calls come through the tap.
bool live();
// fd was reported with EPOLLRDHUP, EPOLLHUP or EPOLLERR since forget(fd).
bool peer_gone(int fd);
// A new connection on fd (its epoll registration reports what is already pending).
void forget(int fd);

}  // namespace cosocket::epoll_tap
