// Ground truth as JSON (one line per scene, also the index.jsonl record) and image files.
#include "tools/scenes/scene.h"

#include <stb_image_write.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "runtime/json.h"

namespace glimpse::scenes {

std::string json_quote(std::string_view text) { return glimpse::json_quote(text); }

namespace {

// Minimal streaming writer: the caller supplies the structure, this adds commas and quoting.
class JsonWriter {
public:
    JsonWriter& begin_object() { return open('{'); }
    JsonWriter& end_object() { return close('}'); }
    JsonWriter& begin_array() { return open('['); }
    JsonWriter& end_array() { return close(']'); }

    JsonWriter& key(std::string_view name) {
        separate();
        out_ += json_quote(name);
        out_ += ':';
        after_key_ = true;
        return *this;
    }
    JsonWriter& value(std::string_view s) { return raw(json_quote(s)); }
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(int64_t v) { return raw(std::to_string(v)); }
    JsonWriter& value(uint64_t v) { return raw(std::to_string(v)); }
    JsonWriter& value(int v) { return value(int64_t{v}); }
    JsonWriter& value(bool v) { return raw(v ? "true" : "false"); }
    JsonWriter& null() { return raw("null"); }
    JsonWriter& box(const PixelBox& b) {
        begin_array().value(b.x0).value(b.y0).value(b.x1).value(b.y1);
        return end_array();
    }

    std::string take() { return std::move(out_); }

private:
    JsonWriter& open(char c) {
        separate();
        out_ += c;
        first_in_container_ = true;
        return *this;
    }
    JsonWriter& close(char c) {
        out_ += c;
        first_in_container_ = false;
        return *this;
    }
    JsonWriter& raw(std::string_view text) {
        separate();
        out_ += text;
        return *this;
    }
    void separate() {
        if (after_key_) {
            after_key_ = false;
        } else if (!first_in_container_ && !out_.empty()) {
            out_ += ',';
        }
        first_in_container_ = false;
    }

    std::string out_;
    bool first_in_container_ = true;
    bool after_key_ = false;
};

void write_object(JsonWriter& w, const SceneObject& o) {
    w.begin_object();
    w.key("shape").value(shape_name(o.shape));
    w.key("color").value(color_name(o.color));
    w.key("size").value(size_class_name(o.size));
    w.key("size_px").value(o.size_px);
    w.key("center").begin_array().value(o.center_x).value(o.center_y).end_array();
    w.key("bbox").box(o.bbox);
    w.key("area_px").value(o.area_px);
    w.key("visible_px").value(o.visible_px);
    w.end_object();
}

void write_text(JsonWriter& w, const std::optional<SceneText>& text) {
    if (!text) {
        w.null();
        return;
    }
    w.begin_object();
    w.key("string").value(text->chars);
    w.key("color").value(color_name(text->color));
    w.key("scale").value(text->scale);
    w.key("bbox").box(text->bbox);
    w.end_object();
}

void write_qa(JsonWriter& w, const QaPair& qa) {
    w.begin_object();
    w.key("kind").value(qa_kind_name(qa.kind));
    w.key("question").value(qa.question);
    w.key("answer").value(qa.answer);
    if (qa.kind == QaKind::exist) w.key("probe").value(exist_probe_name(qa.probe));
    w.end_object();
}

}  // namespace

std::string scene_to_json(const Scene& scene, std::string_view image_file) {
    JsonWriter w;
    w.begin_object();
    w.key("image").value(image_file);
    w.key("seed").value(scene.seed);
    w.key("width").value(scene.image.width);
    w.key("height").value(scene.image.height);
    w.key("background").value(background_name(scene.background));
    w.key("many_small").value(scene.many_small);
    w.key("caption").value(scene.caption);
    w.key("objects").begin_array();
    for (const SceneObject& o : scene.objects) write_object(w, o);
    w.end_array();
    w.key("text");
    write_text(w, scene.text);
    w.key("qa").begin_array();
    for (const QaPair& qa : scene.qa) write_qa(w, qa);
    w.end_array();
    w.end_object();
    return w.take();
}

namespace {

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

Status write_bytes(const std::string& path, const void* header, size_t header_size, const void* data,
                   size_t size) {
    std::FILE* raw = std::fopen(path.c_str(), "wb");
    GLIMPSE_CHECK_OR_RETURN(raw != nullptr, io_error, "%s: cannot open for writing: %s", path.c_str(),
                            std::strerror(errno));
    FilePtr file(raw);
    const bool wrote = (header_size == 0 || std::fwrite(header, 1, header_size, raw) == header_size) &&
                       (size == 0 || std::fwrite(data, 1, size, raw) == size);
    GLIMPSE_CHECK_OR_RETURN(wrote, io_error, "%s: write failed: %s", path.c_str(), std::strerror(errno));
    GLIMPSE_CHECK_OR_RETURN(std::fclose(file.release()) == 0, io_error, "%s: close failed: %s", path.c_str(),
                            std::strerror(errno));
    return Status::ok();
}

}  // namespace

Status write_text_file(const std::string& path, std::string_view content) {
    return write_bytes(path, nullptr, 0, content.data(), content.size());
}

void configure_png_writer(int level) {
    stbi_write_png_compression_level = level;
    stbi_write_force_png_filter = 0;  // 0 = PNG filter type "None"
}

Status write_scene_image(const SceneImage& image, const std::string& path, ImageFormat format) {
    GLIMPSE_CHECK_OR_RETURN(image.width > 0 && image.height > 0 &&
                                image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
                            invalid_argument, "%s: image %dx%d has %zu bytes of RGB, expected %zu", path.c_str(),
                            image.width, image.height, image.rgb.size(),
                            static_cast<size_t>(image.width) * image.height * 3);
    if (format == ImageFormat::ppm) {
        const std::string header = str_printf("P6\n%d %d\n255\n", image.width, image.height);
        return write_bytes(path, header.data(), header.size(), image.rgb.data(), image.rgb.size());
    }
    // stb reports failure without a reason; errno is the best hint it leaves.
    errno = 0;
    const int ok = stbi_write_png(path.c_str(), image.width, image.height, 3, image.rgb.data(), image.width * 3);
    GLIMPSE_CHECK_OR_RETURN(ok != 0, io_error, "%s: writing PNG failed: %s", path.c_str(),
                            errno != 0 ? std::strerror(errno) : "unknown error");
    return Status::ok();
}

}  // namespace glimpse::scenes
