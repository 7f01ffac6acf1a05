#pragma once

/// The operator dashboard's files (ui/: index.html, app.css, app.js),
/// compiled into the binary by cmake/embed_assets.cmake. The branch serves
/// them under /ui/. No CAF, no Boost.

#include <string_view>

namespace cyme::ui {

struct asset {
  std::string_view content_type; ///< e.g. "text/html; charset=utf-8"
  std::string_view body;
};

/// The file at `path` under /ui/ ("" or "index.html" -> index.html), or
/// nullptr. Only the embedded files' own names match: anything else (another
/// name, a subfolder, "..", a leading '/') is nullptr.
const asset* find(std::string_view path);

} // namespace cyme::ui
