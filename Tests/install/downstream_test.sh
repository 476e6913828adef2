#!/usr/bin/env bash
# downstream_test.sh — `make downstream-test`: a Swift package that depends on loramixer by URL and
# version, as a Swift developer's would.
#   1. git clone of this repository's committed HEAD into a temporary folder, tagged VERSION.
#   2. A package with .package(url: "file://<clone>", from: "<VERSION>") and a target using the
#      product LoRAMixer; its main.swift loads models/tiny-llama, the three experts and the router
#      through the Swift API and generates the answer to "12+30=" (greedy, bytes as tokens).
#   3. swift build (debug; one scratch folder under the temporary folder) and run: "12+30=42".
#   4. The check can fail: the clone with `unsafeFlags` put back into Package.swift, tagged as the
#      next patch version and required exactly, is refused by SwiftPM.
# Uncommitted changes are not seen (the clone is of HEAD). SwiftPM fetches the clone's own
# dependencies by their URLs (git's url.insteadOf mirror, where one is configured).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(tr -d ' \n' < "$root/VERSION")
swift=${SWIFT:-swift}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "downstream_test: FAIL: $*"; exit 1; }

git clone -q "$root" "$tmp/loramixer"
git -C "$tmp/loramixer" tag -f "$version" >/dev/null
echo "---- downstream_test: clone of $(git -C "$tmp/loramixer" rev-parse --short HEAD) tagged $version"
grep -q "\.unsafeFlags(" "$tmp/loramixer/Package.swift" && fail "Package.swift at HEAD uses unsafeFlags"

app=$tmp/app
mkdir -p "$app/Sources/app"
write_manifest() {  # write_manifest REQUIREMENT
    cat > "$app/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "app",
    dependencies: [.package(url: "file://$tmp/loramixer", $1)],
    targets: [
        .executableTarget(name: "app", dependencies: [.product(name: "LoRAMixer", package: "loramixer")],
                          path: "Sources/app"),
    ]
)
SWIFT
}
write_manifest "from: \"$version\""
cat > "$app/Sources/app/main.swift" <<'SWIFT'
import LoRAMixer

// app MODELS_DIR PROMPT: the bundled byte-level model routes PROMPT through its experts.
let models = CommandLine.arguments[1], text = CommandLine.arguments[2]
let model = try LanguageModel(directory: "\(models)/tiny-llama")
let mixer = Mixer(model: model)
for name in ["math", "strings", "lookup"] {
    _ = try mixer.addPEFT(name: name, directory: "\(models)/experts/\(name)")
}
try mixer.loadRouter(path: "\(models)/router.safetensors")
let session = try mixer.makeSession()
let prompt = text.utf8.map { Int32($0) }                       // a token is a byte
let answer = try session.generate(prompt: prompt, options: .init(maxTokens: 16, stopTokens: [10]))
print(text + String(decoding: answer.map { UInt8($0) }, as: UTF8.self))
SWIFT

echo "---- downstream_test: swift build of a package requiring loramixer from: \"$version\""
start=$SECONDS
"$swift" build --package-path "$app" --scratch-path "$tmp/scratch" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)' \
    | tail -n 15
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "swift build of the downstream package failed"
grep -q "\"version\" : \"$version\"" "$app/Package.resolved" || fail "Package.resolved does not pin loramixer $version"
answer=$("$tmp/scratch/debug/app" "$root/models" "12+30=") || fail "the downstream app exited $?"
echo "$answer  (built in $((SECONDS - start)) s)"
[ "$answer" = "12+30=42" ] || fail "the downstream app printed '$answer', expected '12+30=42'"

echo "---- downstream_test: the same with unsafeFlags back in Package.swift (must be refused)"
major=${version%%.*} rest=${version#*.}
next="$major.${rest%%.*}.$(( ${version##*.} + 1 ))"
(cd "$tmp/loramixer" && sed -i 's|path: "Sources/CKernels"$|path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]|' Package.swift \
    && grep -q "\.unsafeFlags(" Package.swift && git -c user.name=t -c user.email=t@t commit -qam "unsafeFlags" && git tag "$next")
write_manifest "exact: \"$next\""
if out=$("$swift" build --package-path "$app" --scratch-path "$tmp/scratch" 2>&1); then
    fail "SwiftPM built a dependency with unsafeFlags required by version: the check proves nothing"
fi
grep -i "unsafe" <<<"$out" | head -n 2 | sed "s/^/    refused as expected: /"
grep -qi "unsafe" <<<"$out" || { tail -n 10 <<<"$out"; fail "the refusal does not mention unsafe flags"; }
echo "downstream_test: passed (resolved loramixer $version by version from a file:// URL, built, ran; unsafeFlags refused)"
