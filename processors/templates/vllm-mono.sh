# Mono: one vLLM for every GPU (tensor parallel), serving on the engine port.
docker rm -f inferplane-vllm >/dev/null 2>&1 || true
docker run -d --name inferplane-vllm --restart unless-stopped \
  --gpus all --ipc=host \
  --env-file "$HF_ENV_FILE" \
  -v "$DATA_DIR/huggingface:/root/.cache/huggingface" \
  -p "$ENGINE_PORT:8000" \
  "$VLLM_IMAGE" --model "$MODEL" --served-model-name "$MODEL" \
  --tensor-parallel-size "$GPU_COUNT"
echo "vLLM started: $MODEL on port $ENGINE_PORT, tensor parallel size $GPU_COUNT"
