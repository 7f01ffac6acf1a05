/// A stand-in for `cyme-worker` in the process driver's tests: it takes the
/// worker's flags (only `--name` matters), reports how it was started on
/// stdout, then sleeps until signalled and exits 0 on SIGTERM.
///
/// Extra flags:
///   --ignore-term  ignore SIGTERM (only SIGKILL ends it)
///   --fork-child   fork a child that stays in its process group and sleeps
///   --lines N      after its first line, write N numbered lines as fast as
///                  it can ("line <i> of <name> ..." padded to 40 bytes with
///                  its '\n', i from 1), in writes of 1000 bytes that cut
///                  lines anywhere
///   --kill-self    then end by SIGKILL, as a kill -9 would, instead of
///                  sleeping
///
/// Its first line of output, which the tests read from the worker log:
///   sleeper name=<name> pid=<pid> pgid=<pgid> fds=<open fds> stdin=<path>
///   [child=<pid>]

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t terminated = 0;

void on_term(int) {
  terminated = 1;
}

std::string open_fds() {
  std::string out;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return "?";
  int own = dirfd(dir);
  while (auto* entry = readdir(dir)) {
    if (entry->d_name[0] == '.')
      continue;
    if (std::atoi(entry->d_name) == own)
      continue;
    if (!out.empty())
      out += ',';
    out += entry->d_name;
  }
  closedir(dir);
  return out;
}

std::string stdin_path() {
  char buf[PATH_MAX];
  auto n = readlink("/proc/self/fd/0", buf, sizeof buf - 1);
  if (n < 0)
    return "closed";
  return std::string(buf, static_cast<size_t>(n));
}

/// Writes all of `text` to stdout.
void write_out(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    auto n = write(1, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      std::exit(3);
    done += static_cast<size_t>(n);
  }
}

/// The numbered lines of --lines, 40 bytes each, written 1000 bytes at a
/// time so that writes end inside lines.
void write_lines(const std::string& name, long count) {
  std::string pending;
  for (long i = 1; i <= count; ++i) {
    std::string line = "line " + std::to_string(i) + " of " + name + " ";
    line.resize(39, '.');
    pending += line + '\n';
    if (pending.size() >= 1000) {
      write_out(pending.substr(0, 1000));
      pending.erase(0, 1000);
    }
  }
  write_out(pending);
}

/// Sleeps, with SIGTERM blocked outside sigsuspend, until it arrives.
void sleep_until_term() {
  sigset_t term;
  sigset_t old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  sigdelset(&old, SIGTERM);
  while (terminated == 0)
    sigsuspend(&old);
}

} // namespace

int main(int argc, char** argv) {
  std::string name;
  bool ignore_term = false;
  bool fork_child = false;
  long lines = 0;
  bool kill_self = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--name") == 0 && i + 1 < argc)
      name = argv[++i];
    else if (std::strcmp(argv[i], "--ignore-term") == 0)
      ignore_term = true;
    else if (std::strcmp(argv[i], "--fork-child") == 0)
      fork_child = true;
    else if (std::strcmp(argv[i], "--lines") == 0 && i + 1 < argc)
      lines = std::atol(argv[++i]);
    else if (std::strcmp(argv[i], "--kill-self") == 0)
      kill_self = true;
  }
  if (name.empty()) {
    std::fprintf(stderr, "usage: %s --name NAME [worker flags...] "
                         "[--ignore-term] [--fork-child] [--lines N] "
                         "[--kill-self]\n", argv[0]);
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = ignore_term ? SIG_IGN : on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  std::string line = "sleeper name=" + name
                     + " pid=" + std::to_string(getpid())
                     + " pgid=" + std::to_string(getpgrp())
                     + " fds=" + open_fds() + " stdin=" + stdin_path();
  if (fork_child) {
    pid_t child = fork();
    if (child == 0) {
      signal(SIGTERM, SIG_DFL);
      for (;;)
        pause();
    }
    line += " child=" + std::to_string(child);
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  write_lines(name, lines);
  if (kill_self)
    raise(SIGKILL);
  if (ignore_term) {
    for (;;)
      pause();
  }
  sleep_until_term();
  std::printf("sleeper name=%s got SIGTERM\n", name.c_str());
  return 0;
}
