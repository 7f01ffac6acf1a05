#pragma once

/// The table cmake/embed_assets.cmake generates: every embedded file with
/// its name. Private to api/ui_assets.cpp and the generated source.

#include <cstddef>
#include <string_view>

#include "api/ui_assets.hpp"

namespace cyme::ui::detail {

struct embedded_file {
  std::string_view name; ///< file name, no folder: "app.js"
  asset file;
};

extern const embedded_file files[];
extern const std::size_t file_count;

} // namespace cyme::ui::detail
