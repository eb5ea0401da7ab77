#!/usr/bin/env bash
# vgg_predict --model vgg11_bn on an image file gives torchvision's logits for it (1e-4 relative),
# prints named top classes, and refuses a class file of the wrong length. The reference comes
# from tests/torchvision_reference.py (exit 77, a skip, without torchvision).
set -euo pipefail
predict=$1 reference_script=$2 dir=$3 photo=$4
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$dir/vgg11_bn-photo.txt" ] || /usr/bin/python3 "$reference_script" "$dir" || exit $?

"$predict" --model vgg11_bn --weights "$dir/vgg11_bn.safetensors" --logits "$photo" > "$dir/predict-logits.txt"
sed 's/^[^:]*: //' "$dir/predict-logits.txt" | awk -v ref="$dir/vgg11_bn-photo.txt" '
  { getline line < ref; n = split(line, want, " "); if (n != NF) { print "got " NF " logits, torchvision " n; exit 1 }
    for (i = 1; i <= n; ++i) { d = $i - want[i]; if (d < 0) d = -d; if (d > worst) worst = d
                               a = want[i] < 0 ? -want[i] : want[i]; if (a > largest) largest = a }
    printf "largest |logit| %g, largest difference %g\n", largest, worst
    if (!(largest > 0) || worst > 1e-4 * largest) exit 1 }' || fail "vgg_predict's logits differ from torchvision's"

seq 0 999 | sed 's/^/thing /' > "$dir/classes.txt"
"$predict" --model vgg11_bn --weights "$dir/vgg11_bn.safetensors" --classes "$dir/classes.txt" --top 2 "$photo" > "$dir/predict-top.txt"
grep -Eq "^$photo: thing [0-9]+ [01]\.[0-9]{3}, thing [0-9]+ [01]\.[0-9]{3}$" "$dir/predict-top.txt" ||
  fail "no top-2 line: $(cat "$dir/predict-top.txt")"
head -3 "$dir/classes.txt" > "$dir/three.txt"
if "$predict" --model vgg11_bn --weights "$dir/vgg11_bn.safetensors" --classes "$dir/three.txt" "$photo" 2> "$dir/error.txt"; then
  fail "a class file of 3 names for 1000 classes was accepted"
fi
grep -q "three.txt: names 3 classes, but the model has 1000" "$dir/error.txt" || fail "unclear error: $(cat "$dir/error.txt")"
echo "1 passed, 0 failed"
