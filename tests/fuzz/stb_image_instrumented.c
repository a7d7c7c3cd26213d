// stb_image compiled from Debian's libstb-dev header into the image fuzz target, so that
// libFuzzer sees coverage inside the decoder and ASan/UBSan check it (Debian's libstb.a is
// built without either). The linker then takes these definitions instead of libstb.a's
// stb_image.o; the header is the same v2.27 the library links against.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
