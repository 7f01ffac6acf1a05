#include "api/ui_assets.hpp"

#include "api/ui_assets_table.hpp"

namespace cyme::ui {

const asset* find(std::string_view path) {
  if (path.empty())
    path = "index.html";
  // An exact match against the few names there are: no path is ever built
  // from `path`, so "..", "a/../b" or "%2e%2e" cannot reach anything else.
  for (std::size_t i = 0; i < detail::file_count; ++i)
    if (detail::files[i].name == path)
      return &detail::files[i].file;
  return nullptr;
}

} // namespace cyme::ui
