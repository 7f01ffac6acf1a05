#pragma once

/// The JSON wire format of the control protocol and of tasks (see
/// docs/PROTOCOL.md). Encoders produce one JSON object per Kafka message;
/// decoders accept any bytes and either return a message or say, in one
/// sentence, why the bytes were dropped. Nothing here throws.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "messages/control.hpp"
#include "messages/supervision.hpp"
#include "messages/topics.hpp" // wire_version, max_wire_message

namespace cyme {

/// A decoded value or the reason it could not be decoded.
template <class T>
struct decoded {
  std::optional<T> value;
  std::string error;

  explicit operator bool() const {
    return value.has_value();
  }
};

/// A command as it travels on the control topic.
struct command_envelope {
  /// Correlation id: every reply carries it back.
  std::string id;
  /// Topic the replies go to.
  std::string reply_to;
  /// op, destinations, queue, max/min; broker and timeout stay local.
  control_command command;
};

std::string encode_command(const command_envelope& env);
decoded<command_envelope> decode_command(std::string_view bytes);

/// decode_command for one reader named `name`, as a worker reads the
/// control topic: `addressed` says whether the command lists `name`, and
/// the destinations are left out (a command to 5,000 instances is not
/// made into 5,000 strings by each of them). Accepts and refuses exactly
/// what decode_command does; the usual forms are scanned without a
/// document (the unit tests hold the two to the same answers).
decoded<command_envelope> decode_command_for(std::string_view bytes,
                                             std::string_view name,
                                             bool& addressed);

/// The messages that carry `env`: one, or, when naming every destination
/// would pass max_wire_message, several of at most that size, each with
/// the same id and a share of the destinations (in order, each once).
std::vector<std::string> encode_command_messages(const command_envelope& env);

/// A reply as it travels on a branch's reply topic.
struct reply_envelope {
  std::string id;
  control_op op = control_op::ping;
  control_reply reply;
};

std::string encode_reply(const reply_envelope& env);

/// Appends `s` as a JSON string, escaped as nlohmann's dump escapes it
/// (quote, backslash, control characters); other bytes are copied as they
/// are, so valid UTF-8 stays valid.
void append_json_string(std::string& out, std::string_view s);

/// encode_reply through the full JSON encoder. encode_reply writes the
/// same bytes directly when every text in the reply is ASCII; the unit
/// tests hold it to that.
std::string encode_reply_full(const reply_envelope& env);
decoded<reply_envelope> decode_reply(std::string_view bytes);

/// decode_reply without its fast path (a scan of the usual replies that
/// builds no document): the full parser alone. decode_reply answers every
/// input as this does, value or error; the unit tests hold it to that.
decoded<reply_envelope> decode_reply_full(std::string_view bytes);

/// Parses an op name ("ping", "add_consumer", ...).
std::optional<control_op> parse_control_op(std::string_view name);

/// A task as it travels on a queue topic.
struct task_message {
  std::string id;
  /// Name of the handler that runs it ("echo", "sleep", "fail", "exec" or
  /// one a program registered).
  std::string handler;
  /// Handler arguments: any JSON value, kept as its JSON text.
  std::string args_json = "null";
};

std::string encode_task(const task_message& task);
decoded<task_message> decode_task(std::string_view bytes);

/// The id of a task that did not decode, when the bytes still hold one (a
/// JSON object with an "id" string of 1 to 128 bytes), so its sender can be
/// told; empty otherwise.
std::string task_id_of(std::string_view bytes);

enum class task_state : uint8_t { success, failure };

std::string to_string(task_state x);

/// A task's outcome as it travels on the results topic (keyed by task id).
struct task_result {
  std::string id;
  task_state state = task_state::success;
  /// The handler's result as JSON text (SUCCESS), or "null".
  std::string result_json = "null";
  /// Why it failed (FAILURE).
  std::string error;
  std::string instance;
  std::string queue;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
};

std::string encode_result(const task_result& result);
decoded<task_result> decode_result(std::string_view bytes);

/// A worker's stats as JSON text, as the protocol's `stats` result and the
/// HTTP API show them.
std::string stats_json_text(const worker_stats& stats);

/// The supervisor's status as JSON text, as the HTTP API and the CLI show
/// it.
std::string status_json_text(const supervisor_status& status);

/// A wall-clock time (ms since the epoch) as RFC 3339 UTC with
/// milliseconds, as events and statuses show times.
std::string wall_time_text(int64_t ms);

} // namespace cyme
