#pragma once

/// Names for cyme's own threads, so `top -H`, `ps -L`, perf and debuggers
/// tell them apart (they otherwise all carry the program's name).

#include <pthread.h>

#include <thread>

namespace cyme {

/// Names `t`; Linux keeps at most 15 characters of `name`.
inline void name_thread(std::thread& t, const char* name) {
  ::pthread_setname_np(t.native_handle(), name);
}

} // namespace cyme
