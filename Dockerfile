# natter: one image, every role (choose with `serve --role`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin natter

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/natter /usr/local/bin/natter
ENV NATTER_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["natter"]
CMD ["serve"]
