//! The seed catalog: real open models with what they need to serve, loaded by
//! `inferplane catalog seed`. VRAM figures are for bf16 weights plus room for a useful KV cache.

use super::{ModelTask, RegisterModel};

struct Seed {
    repo: &'static str,
    name: &'static str,
    params: i64,
    vram: i64,
    context: i64,
    task: ModelTask,
}

const G: ModelTask = ModelTask::Generate;
const E: ModelTask = ModelTask::Embed;

#[rustfmt::skip]
const SEEDS: &[Seed] = &[
    Seed { repo: "meta-llama/Llama-3.2-1B-Instruct", name: "Llama 3.2 1B Instruct", params: 1_240_000_000, vram: 8, context: 131_072, task: G },
    Seed { repo: "meta-llama/Llama-3.2-3B-Instruct", name: "Llama 3.2 3B Instruct", params: 3_210_000_000, vram: 12, context: 131_072, task: G },
    Seed { repo: "meta-llama/Llama-3.1-8B-Instruct", name: "Llama 3.1 8B Instruct", params: 8_030_000_000, vram: 24, context: 131_072, task: G },
    Seed { repo: "meta-llama/Llama-3.1-70B-Instruct", name: "Llama 3.1 70B Instruct", params: 70_600_000_000, vram: 160, context: 131_072, task: G },
    Seed { repo: "meta-llama/Llama-3.3-70B-Instruct", name: "Llama 3.3 70B Instruct", params: 70_600_000_000, vram: 160, context: 131_072, task: G },
    Seed { repo: "mistralai/Mistral-7B-Instruct-v0.3", name: "Mistral 7B Instruct v0.3", params: 7_250_000_000, vram: 24, context: 32_768, task: G },
    Seed { repo: "mistralai/Mistral-Nemo-Instruct-2407", name: "Mistral Nemo 12B Instruct", params: 12_200_000_000, vram: 40, context: 131_072, task: G },
    Seed { repo: "mistralai/Mistral-Small-24B-Instruct-2501", name: "Mistral Small 24B Instruct", params: 23_600_000_000, vram: 64, context: 32_768, task: G },
    Seed { repo: "mistralai/Mixtral-8x7B-Instruct-v0.1", name: "Mixtral 8x7B Instruct", params: 46_700_000_000, vram: 112, context: 32_768, task: G },
    Seed { repo: "Qwen/Qwen2.5-7B-Instruct", name: "Qwen 2.5 7B Instruct", params: 7_620_000_000, vram: 24, context: 32_768, task: G },
    Seed { repo: "Qwen/Qwen2.5-14B-Instruct", name: "Qwen 2.5 14B Instruct", params: 14_800_000_000, vram: 48, context: 32_768, task: G },
    Seed { repo: "Qwen/Qwen2.5-32B-Instruct", name: "Qwen 2.5 32B Instruct", params: 32_800_000_000, vram: 80, context: 32_768, task: G },
    Seed { repo: "Qwen/Qwen2.5-72B-Instruct", name: "Qwen 2.5 72B Instruct", params: 72_700_000_000, vram: 160, context: 32_768, task: G },
    Seed { repo: "Qwen/Qwen2.5-Coder-7B-Instruct", name: "Qwen 2.5 Coder 7B Instruct", params: 7_620_000_000, vram: 24, context: 32_768, task: G },
    Seed { repo: "google/gemma-2-9b-it", name: "Gemma 2 9B Instruct", params: 9_240_000_000, vram: 24, context: 8_192, task: G },
    Seed { repo: "microsoft/Phi-3.5-mini-instruct", name: "Phi 3.5 mini Instruct", params: 3_820_000_000, vram: 16, context: 131_072, task: G },
    Seed { repo: "BAAI/bge-m3", name: "BGE M3 (embeddings)", params: 568_000_000, vram: 4, context: 8_192, task: E },
    Seed { repo: "intfloat/multilingual-e5-large", name: "Multilingual E5 large (embeddings)", params: 560_000_000, vram: 4, context: 512, task: E },
];

/// Registration commands for the seed catalog; data volumes come from the sizing table.
pub fn seed_catalog() -> Vec<RegisterModel> {
    SEEDS
        .iter()
        .map(|s| RegisterModel {
            hf_repo_id: s.repo.to_string(),
            display_name: s.name.to_string(),
            parameter_count: s.params,
            required_vram_gb: s.vram,
            context_length: s.context,
            data_volume_gb: None,
            task: s.task,
            active: true,
        })
        .collect()
}
