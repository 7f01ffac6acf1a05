#pragma once

/// Task handlers: what a worker runs for a task, by name. A program that
/// embeds the worker registers its own next to the built-in ones:
///
///   cyme::worker::handler_registry handlers;
///   handlers.add("double", [](const nlohmann::json& args) {
///     return args.get<int>() * 2;
///   });
///   return cyme::worker::run_worker_main(argc, argv, handlers);
///
/// A handler returns its result as JSON; it fails by throwing an exception,
/// which becomes a FAILURE result with the exception's message and never
/// takes the worker down.

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace cyme::worker {

using task_handler = std::function<nlohmann::json(const nlohmann::json& args)>;

class handler_registry {
public:
  /// Registers (or replaces) the handler called `name`.
  void add(const std::string& name, task_handler handler);

  /// The handler called `name`, or nullptr.
  const task_handler* find(const std::string& name) const;

private:
  std::map<std::string, task_handler> handlers_;
};

/// How the built-in `exec` handler runs its program.
struct exec_settings {
  /// Program to run; empty disables `exec`.
  std::string program;
  std::chrono::milliseconds timeout{30000};
};

/// Adds echo (returns its arguments), sleep (seconds as a number, or
/// {"ms": N}), fail (throws, with args["message"] if given) and exec (runs
/// `exec.program` with execve, never a shell, the task's arguments as JSON
/// on stdin, its stdout as the result: JSON when it parses, else a
/// string; see run_program for failures). A
/// handler already registered under one of these names is kept.
void add_builtin_handlers(handler_registry& registry, exec_settings exec);

/// Runs `program` with no arguments, `input` on stdin; returns stdout.
/// Throws when it cannot start, exits non-zero, is killed by a signal, runs
/// past `timeout` (then SIGKILLed) or writes more than 1 MiB; the message
/// ends with the last 2 KiB of its stderr, if it wrote any.
std::string run_program(const std::string& program, const std::string& input,
                        std::chrono::milliseconds timeout);

} // namespace cyme::worker
