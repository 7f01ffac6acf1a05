#pragma once

/// Output for people: the branch's JSON answers as aligned tables and
/// `key: value` lines. Scripts use `--json` instead, which prints the
/// answer as the server sent it; so these formats may change for
/// readability without breaking anyone.

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/cli/branch_call.hpp"

namespace cyme::cli {

/// The text of one JSON value in a cell or after `key:`: strings raw,
/// null as empty, arrays of strings comma-separated, anything else compact
/// JSON (so nested values stay unambiguous).
std::string cell_text(const nlohmann::ordered_json& value);

/// Prints `rows` under `header`, each column padded to its widest cell and
/// separated by two spaces; the last column is not padded.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows,
                 std::ostream& out);

/// Prints one `key: value` line per member of `object`, in the server's
/// order.
void print_object(const nlohmann::ordered_json& object, std::ostream& out);

/// Prints `answer` as `how` says; an answer of an unexpected shape (the API
/// may grow) is printed as pretty JSON rather than lost.
void print_answer(view how, const std::string& names_title,
                  const nlohmann::ordered_json& answer, std::ostream& out);

} // namespace cyme::cli
