#pragma once

/// Error codes that cross actor boundaries. Actors answer a failed request
/// with a `caf::error` made from one of these, never with an exception.

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace cyme {

enum class cyme_errc : uint8_t {
  /// A request or setting failed validation; nothing was changed.
  invalid_argument = 1,
  /// A named instance is not in the model.
  unknown_instance,
  /// The process driver could not start or stop a process.
  process_failure,
  /// The control bus could not deliver a command.
  bus_failure,
  /// The model store could not read or write the model.
  store_failure,
  /// A named app or queue does not exist.
  not_found,
  /// The request contradicts the model's state (e.g. deleting an app that
  /// still has instances).
  conflict,
};

/// Human-readable name of an error code, as printed in logs and HTTP errors.
std::string to_string(cyme_errc code);

/// Renders a `caf::error` made from any `cyme_errc`, with its context.
std::string describe(const caf::error& err);

} // namespace cyme

CAF_ERROR_CODE_ENUM(cyme::cyme_errc, "cyme")
