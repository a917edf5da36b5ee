# selfplay on NVIDIA GPUs. The base image brings CUDA PyTorch and vLLM 0.31 (the newest vLLM that
# TRL 1.16 accepts); this adds DeepSpeed, the package and its tools.
#   docker build -t selfplay .
#   docker run --gpus all --ipc=host -v $PWD/runs:/work/runs -v /models:/models selfplay \
#       python -m selfplay.run preset=none model.path=/models/your-instruct-model ...
# The GPU tests run inside it too: docker run --gpus all --ipc=host selfplay pytest -m gpu
FROM vllm/vllm-openai:v0.31.0
ENV PIP_NO_CACHE_DIR=1 \
    HF_HOME=/work/.hf \
    TORCH_EXTENSIONS_DIR=/work/.torch_extensions \
    TOKENIZERS_PARALLELISM=false
WORKDIR /work
COPY pyproject.toml README.md LICENSE install.sh ./
COPY selfplay ./selfplay
COPY conf ./conf
COPY launch ./launch
COPY tests ./tests
# vLLM 0.31 needs transformers < 5.18; keep the image's torch and vLLM as they are.
RUN python -m pip install "transformers>=5.16.1,<5.18" -e ".[deepspeed,dev,real]"
ENTRYPOINT []
CMD ["python", "-m", "selfplay.run", "--help"]
