#pragma once
// Names the calling thread (at most 15 characters are kept), so that `top -H`, `ps -L` and
// perf show which of carrier's threads is busy: spool-sync, delivery, smtp-out, checks...
#include <pthread.h>

namespace carrier {
inline void set_thread_name(const char* name) { pthread_setname_np(pthread_self(), name); }
}  // namespace carrier
