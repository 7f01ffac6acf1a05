#include "messages/version.hpp"

#include "cyme_version.h"

namespace cyme {

std::string version_text(const std::string& program) {
  return program + " " CYME_VERSION " (git " CYME_REVISION ")";
}

} // namespace cyme
