# Janus: one image for the operator, the pipeline steps and the decision service.
# Build: docker build --build-arg JANUS_GIT_COMMIT=$(git rev-parse HEAD) -t janus .
# (No Docker engine runs on the project's machines; this file is kept simple and checked by eye.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
# .git is not in the build context: the commit comes in as a build argument (see build.rs).
ARG JANUS_GIT_COMMIT=unknown
ENV JANUS_GIT_COMMIT=${JANUS_GIT_COMMIT}
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked --bin janus

# The ONNX Runtime shared library, from the same PyPI wheel the tests use (ort loads it at run time).
FROM python:3.11-slim-bookworm AS onnxruntime
RUN pip install --no-cache-dir --no-deps --target /ort onnxruntime==1.32.0 \
    && cp /ort/onnxruntime/capi/libonnxruntime.so.1.32.0 /libonnxruntime.so.1.32.0

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin janus
COPY --from=build /src/target/release/janus /usr/local/bin/janus
COPY --from=onnxruntime /libonnxruntime.so.1.32.0 /usr/local/lib/libonnxruntime.so.1.32.0
COPY config /etc/janus
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.32.0
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/janus"]
CMD ["--help"]
