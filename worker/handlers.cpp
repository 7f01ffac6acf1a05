#include "worker/handlers.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace cyme::worker {

void handler_registry::add(const std::string& name, task_handler handler) {
  handlers_[name] = std::move(handler);
}

const task_handler* handler_registry::find(const std::string& name) const {
  auto i = handlers_.find(name);
  return i == handlers_.end() ? nullptr : &i->second;
}

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
  void reset() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

json sleep_handler(const json& args) {
  // Checked before any conversion: a huge or negative number must not
  // overflow into a nonsense duration.
  double ms = 0;
  if (args.is_number())
    ms = args.get<double>() * 1000;
  else if (args.is_object() && args.contains("ms")
           && args["ms"].is_number_unsigned())
    ms = static_cast<double>(args["ms"].get<uint64_t>());
  else
    throw std::invalid_argument("sleep takes seconds or {\"ms\": N}");
  if (!(ms >= 0))
    throw std::invalid_argument("sleep takes a duration of 0 or more");
  if (ms > 3600.0 * 1000)
    throw std::invalid_argument("sleep is limited to one hour");
  std::chrono::milliseconds d{static_cast<int64_t>(ms)};
  std::this_thread::sleep_for(d);
  return json{{"slept_ms", d.count()}};
}

} // namespace

namespace {

/// Most of a program's stderr that a FAILURE result quotes: its end.
constexpr size_t stderr_tail = 2048;

/// " (stderr: ...)" with the end of what the program wrote there, if any.
std::string stderr_note(std::string err) {
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r'))
    err.pop_back();
  if (err.empty())
    return {};
  if (err.size() > stderr_tail)
    err = "..." + err.substr(err.size() - stderr_tail);
  return ": " + err;
}

} // namespace

std::string run_program(const std::string& program, const std::string& input,
                        std::chrono::milliseconds timeout) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string{"pipe: "} + std::strerror(errno));
  fd_guard in_read{in_pipe[0]}, in_write{in_pipe[1]};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string{"pipe: "} + std::strerror(errno));
  fd_guard out_read{out_pipe[0]}, out_write{out_pipe[1]};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string{"pipe: "} + std::strerror(errno));
  fd_guard err_read{err_pipe[0]}, err_write{err_pipe[1]};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  char* argv[] = {const_cast<char*>(program.c_str()), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv,
                         environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw std::runtime_error("cannot run " + program + ": "
                             + std::strerror(rc));
  in_read.reset();
  out_write.reset();
  err_write.reset();
  ::fcntl(in_write.fd, F_SETFL, O_NONBLOCK);
  std::string output;
  std::string errors;
  size_t written = 0;
  if (input.empty())
    in_write.reset();
  auto deadline = clock_type::now() + timeout;
  bool timed_out = false;
  // Reads what is there on `fd` into `into`; closes it at its end.
  auto drain = [](fd_guard& fd, std::string& into) {
    char buf[4096];
    auto r = ::read(fd.fd, buf, sizeof(buf));
    if (r > 0)
      into.append(buf, static_cast<size_t>(r));
    else if (r == 0 || errno != EINTR)
      fd.reset();
  };
  while (out_read.fd >= 0 || err_read.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    // A closed descriptor (-1) is skipped by poll.
    pollfd fds[3] = {{out_read.fd, POLLIN, 0},
                     {err_read.fd, POLLIN, 0},
                     {in_write.fd, POLLOUT, 0}};
    int n = ::poll(fds, 3, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR)
      break;
    if (in_write.fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      auto w = ::write(in_write.fd, input.data() + written,
                       input.size() - written);
      if (w > 0)
        written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN)
        in_write.reset();
      else if (written == input.size())
        in_write.reset();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      drain(out_read, output);
      if (output.size() > 1024 * 1024) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        throw std::runtime_error(program + " wrote more than 1 MiB");
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      drain(err_read, errors);
      if (errors.size() > 2 * stderr_tail)
        errors.erase(0, errors.size() - stderr_tail);
    }
  }
  if (timed_out)
    ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    throw std::runtime_error(program + " timed out after "
                             + std::to_string(timeout.count()) + " ms"
                             + stderr_note(errors));
  if (WIFSIGNALED(status))
    throw std::runtime_error(program + " killed by signal "
                             + std::to_string(WTERMSIG(status))
                             + stderr_note(errors));
  if (WEXITSTATUS(status) != 0)
    throw std::runtime_error(program + " exited with status "
                             + std::to_string(WEXITSTATUS(status))
                             + stderr_note(errors));
  return output;
}

void add_builtin_handlers(handler_registry& registry, exec_settings exec) {
  // A program's own handler of the same name wins over a built-in one.
  auto add = [&registry](const std::string& name, task_handler h) {
    if (registry.find(name) == nullptr)
      registry.add(name, std::move(h));
  };
  add("echo", [](const json& args) { return args; });
  add("sleep", sleep_handler);
  add("fail", [](const json& args) -> json {
    if (args.is_object() && args.contains("message")
        && args["message"].is_string())
      throw std::runtime_error(args["message"].get<std::string>());
    throw std::runtime_error("task failed on purpose");
  });
  add("exec", [exec](const json& args) -> json {
    if (exec.program.empty())
      throw std::runtime_error("exec is not configured for this instance");
    auto out = run_program(exec.program, args.dump(), exec.timeout);
    auto doc = json::parse(out, nullptr, false);
    return doc.is_discarded() ? json(out) : doc;
  });
}

} // namespace cyme::worker
