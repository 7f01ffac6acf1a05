#pragma once

// What every cyme program answers --version with.

#include <string>

namespace cyme {

/// "<program> <version> (git <revision>)": the project's version and the
/// git revision it was built from ("-dirty" when built with changes to
/// it, "unknown" when not built from a git checkout).
std::string version_text(const std::string& program);

} // namespace cyme
