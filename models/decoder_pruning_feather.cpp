#include "models/decoder_pruning_feather.h"

#include <algorithm>

#include "ops/prune_select.h"

namespace glimpse {

Status feather_prune_step(const PruneStage& stage, DecoderPruneStep* step, const std::string& where) {
    // The attention stage scores as FastV does (the stage's own layer, no extra q/k GEMMs) and
    // keeps original position ids: FEATHER is a fix of FastV's criterion and schedule.
    step->score_layer = PruneScoreLayer::own_last;
    step->compact_positions = false;
    const std::string& criterion = stage.text("criterion");
    if (criterion == "uniform") {
        step->select = DecoderSelect::uniform_grid;
    } else if (criterion == "attention") {
        step->select = DecoderSelect::attention;
    } else if (criterion == "auto") {
        step->select = DecoderSelect::uniform_grid;
        step->select_auto = true;
    } else {
        return Status::error(StatusCode::invalid_argument, "%s.args.criterion: '%s' (uniform, attention or auto)",
                             where.c_str(), criterion.c_str());
    }
    return Status::ok();
}

Status resolve_decoder_selects(std::vector<DecoderPruneStep>& steps, const std::string& where) {
    for (size_t i = 0; i < steps.size(); ++i) {
        DecoderPruneStep& st = steps[i];
        if (st.select_auto) {
            st.select = i == 0 ? DecoderSelect::uniform_grid : DecoderSelect::attention;
            st.select_auto = false;
        }
        GLIMPSE_CHECK_OR_RETURN(
            st.select != DecoderSelect::uniform_grid || i == 0, invalid_argument,
            "%s: decoder stage %zu (after layer %d) samples a uniform grid, but only the first decoder stage can: "
            "the visual rows a later stage receives depend on the image (use criterion attention there)",
            where.c_str(), i, st.layer);
        GLIMPSE_CHECK_OR_RETURN(st.select != DecoderSelect::uniform_grid || !st.debias, invalid_argument,
                                "%s: decoder stage %zu (after layer %d) samples a uniform grid, which has no attention "
                                "score to debias (debias applies to attention stages)",
                                where.c_str(), i, st.layer);
    }
    return Status::ok();
}

Status feather_grid_rows(const std::vector<VisualChunkRows>& chunks, int64_t keep, std::vector<int32_t>* rows) {
    int64_t total = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
        const VisualChunkRows& ch = chunks[c];
        GLIMPSE_CHECK_OR_RETURN(ch.side >= 1 && ch.side <= 4096 && ch.rows >= 0 && ch.rows <= ch.side * ch.side,
                                invalid_argument, "feather grid: chunk %zu has %lld rows of a %lld x %lld grid", c,
                                static_cast<long long>(ch.rows), static_cast<long long>(ch.side),
                                static_cast<long long>(ch.side));
        total += ch.rows;
    }
    GLIMPSE_CHECK_OR_RETURN(keep >= 1 && keep <= total, invalid_argument,
                            "feather grid: keep %lld of %lld visual rows (must be in [1, %lld])",
                            static_cast<long long>(keep), static_cast<long long>(total), static_cast<long long>(total));
    rows->clear();
    rows->reserve(static_cast<size_t>(keep));
    std::vector<int32_t> grid;
    int64_t before = 0;  // visual rows of the chunks before this one
    for (const VisualChunkRows& ch : chunks) {
        const int64_t k = keep * (before + ch.rows) / total - keep * before / total;
        if (k > 0) {
            if (ch.rows == ch.side * ch.side) {
                grid.resize(static_cast<size_t>(k));
                GLIMPSE_RETURN_IF_ERROR(prune_uniform_grid_ref(ch.side, ch.side, k, grid.data()));
                for (int32_t g : grid) rows->push_back(static_cast<int32_t>(before + g));
            } else {
                for (int64_t b = 0; b < k; ++b) {
                    rows->push_back(static_cast<int32_t>(before + (2 * b + 1) * ch.rows / (2 * k)));
                }
            }
        }
        before += ch.rows;
    }
    GLIMPSE_ASSERT(static_cast<int64_t>(rows->size()) == keep);
    return Status::ok();
}

Status pruning_plan_enable_debias(PruningPlan* plan, const std::string& where) {
    bool any = false;
    int decoder_index = 0;
    for (PruneStage& st : plan->stages) {
        if (st.site != PruneSite::decoder_layer) continue;
        const bool first = decoder_index++ == 0;
        // feather's uniform-grid stage has no score to debias (resolve_decoder_selects refuses it).
        if (st.method == "feather" && (st.text("criterion") == "uniform" || (st.text("criterion") == "auto" && first))) {
            continue;
        }
        any = true;
        auto it = std::find_if(st.args.begin(), st.args.end(), [](const PruneArg& a) { return a.name == "debias"; });
        GLIMPSE_CHECK_OR_RETURN(it != st.args.end(), invalid_argument, "%s: method %s takes no debias argument",
                                where.c_str(), st.method.c_str());
        it->number = 1;
    }
    GLIMPSE_CHECK_OR_RETURN(any, invalid_argument,
                            "%s: --debias applies to the attention scores of decoder-layer methods (fastv, "
                            "pyramiddrop, feather's attention stage); this plan has no such stage",
                            where.c_str());
    return Status::ok();
}

}  // namespace glimpse
