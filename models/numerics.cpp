#include "models/numerics.h"

#include <string>

namespace glimpse {

Result<Numerics> parse_numerics(std::string_view name) {
    if (name == "exact") return Numerics::exact;
    if (name == "fast") return Numerics::fast;
    return Status::error(StatusCode::invalid_argument, "--numerics must be exact or fast, not '%s'",
                         std::string(name).c_str());
}

const char* numerics_name(Numerics numerics) { return numerics == Numerics::fast ? "fast" : "exact"; }

}  // namespace glimpse
