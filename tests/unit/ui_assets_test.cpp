// The dashboard's embedded files (api/ui_assets.hpp): each found by its
// path with its content type and the bytes of ui/; nothing else found.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include "api/ui_assets.hpp"

namespace {

std::string source_file(const std::string& name) {
  std::ifstream in{std::string{CYME_UI_DIR} + "/" + name, std::ios::binary};
  BOOST_REQUIRE_MESSAGE(in, "cannot read ui/" << name);
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

void check(std::string_view path, const std::string& file,
           std::string_view content_type) {
  auto* a = cyme::ui::find(path);
  BOOST_TEST_INFO("path '" << path << "'");
  BOOST_REQUIRE(a != nullptr);
  BOOST_TEST(a->content_type == content_type);
  BOOST_TEST(a->body == source_file(file));
}

} // namespace

BOOST_AUTO_TEST_SUITE(ui_assets)

BOOST_AUTO_TEST_CASE(each_file_is_found_with_its_content_type) {
  check("index.html", "index.html", "text/html; charset=utf-8");
  check("app.css", "app.css", "text/css; charset=utf-8");
  check("app.js", "app.js", "text/javascript; charset=utf-8");
}

BOOST_AUTO_TEST_CASE(the_folder_itself_is_index_html) {
  auto* index = cyme::ui::find("index.html");
  BOOST_REQUIRE(index != nullptr);
  BOOST_TEST(cyme::ui::find("") == index);
  BOOST_TEST(index->body.find("app.js") != std::string_view::npos);
  BOOST_TEST(index->body.find("app.css") != std::string_view::npos);
}

BOOST_AUTO_TEST_CASE(unknown_paths_are_not_found) {
  for (std::string_view p :
       {"index.htm", "app.js.map", "favicon.ico", "APP.JS", "app", "/",
        "ui/app.js", "/app.js", "app.js/", "./app.js", "app.js?x=1",
        " app.js", "index.html "})
    BOOST_TEST(!cyme::ui::find(p), "'" << p << "'");
  // A name with a NUL inside, not at a literal's end.
  BOOST_TEST(!cyme::ui::find(std::string_view{"app.js\0x", 8}));
}

BOOST_AUTO_TEST_CASE(traversal_attempts_are_not_found) {
  for (std::string_view p :
       {"..", "../", "../x", "a/../../b", "../index.html", "../ui/app.js",
        "x/../app.js", "..%2fapp.js", "%2e%2e/app.js", "....//app.js",
        "..\\app.js", "/etc/passwd", "../../../../etc/passwd",
        "../CMakeLists.txt"})
    BOOST_TEST(!cyme::ui::find(p), "'" << p << "'");
}

BOOST_AUTO_TEST_SUITE_END()
