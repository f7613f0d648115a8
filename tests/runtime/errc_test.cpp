#include "troupe/runtime/errc.hpp"

#include <caf/actor_system.hpp>
#include <catch2/catch.hpp>

#include "troupe/runtime/config.hpp"

namespace troupe {

TEST_CASE("every error code has a name", "[runtime][errc]") {
  CHECK(to_string(errc::unknown_option) == "unknown_option");
  CHECK(to_string(errc::invalid_option_value) == "invalid_option_value");
  CHECK(to_string(errc::cannot_open_file) == "cannot_open_file");
  CHECK(to_string(errc::shutting_down) == "shutting_down");
  CHECK(to_string(errc::closed) == "closed");
  CHECK(to_string(errc::registry_mismatch) == "registry_mismatch");
  CHECK(to_string(errc::timeout) == "timeout");
  CHECK(to_string(errc::tls_config) == "tls_config");
  CHECK(to_string(errc::insecure_refused) == "insecure_refused");
  CHECK(to_string(errc::connect_failed) == "connect_failed");
  CHECK(to_string(errc::type_mismatch) == "type_mismatch");
  CHECK(to_string(errc::job_failed) == "job_failed");
  CHECK(to_string(errc::busy) == "busy");
  CHECK(to_string(errc::refused) == "refused");
  CHECK(to_string(static_cast<errc>(200)) == "errc(200)");
}

TEST_CASE("troupe errors are CAF errors that render by name",
          "[runtime][errc]") {
  config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  caf::actor_system sys{cfg};
  caf::error err = errc::closed;
  CHECK(err == errc::closed);
  CHECK(err.category() == caf::atom("troupe"));
  CHECK(sys.render(err) == "troupe_error(closed)");
  CHECK(sys.render(caf::make_error(errc::shutting_down, "node n1"))
        == "troupe_error(shutting_down, node n1)");
}

TEST_CASE("error_text shows a troupe error's message - or CAF's rendering",
          "[runtime][errc]") {
  CHECK(error_text(caf::make_error(errc::closed, "queue 'q' is closed"))
        == "queue 'q' is closed");
  CHECK_FALSE(error_text(caf::make_error(errc::closed)).empty());
  CHECK(error_text(caf::error{}) == "no error");
}

} // namespace troupe
