#include "messages/errors.hpp"

#include <caf/message.hpp>
#include <caf/to_string.hpp>

namespace cyme {

std::string to_string(cyme_errc code) {
  switch (code) {
    case cyme_errc::invalid_argument:
      return "invalid argument";
    case cyme_errc::unknown_instance:
      return "unknown instance";
    case cyme_errc::process_failure:
      return "process failure";
    case cyme_errc::bus_failure:
      return "control bus failure";
    case cyme_errc::store_failure:
      return "model store failure";
    case cyme_errc::not_found:
      return "not found";
    case cyme_errc::conflict:
      return "conflict";
  }
  return "unknown error";
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() != caf::atom("cyme"))
    return caf::to_string(err);
  auto text = to_string(static_cast<cyme_errc>(err.code()));
  const auto& ctx = err.context();
  if (ctx.match_elements<std::string>())
    text += ": " + ctx.get_as<std::string>(0);
  return text;
}

} // namespace cyme
