"""The optional LLM judge: strict reply parsing, a tiny local model, a fake loopback endpoint."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from idiff_lib.scoring import judge as J  # alias: short name for the judge module in many asserts
from idiff_lib.scoring import rewards, scorers
from idiff_lib.core.errors import ParameterError
from idiff_lib.data.pairs import make_pair

GOOD = '{"verdict": 4, "grounding": 3, "specificity": 5, "fluency": 2}'


@pytest.mark.parametrize("reply, ok", [
    (GOOD, True),
    ("```json\n" + GOOD + "\n```", True),
    ("Sure! " + GOOD, False),                                   # extra prose
    ('{"verdict": 6, "grounding": 3, "specificity": 5, "fluency": 2}', False),   # out of range
    ('{"verdict": 4.5, "grounding": 3, "specificity": 5, "fluency": 2}', False),  # not an integer
    ('{"verdict": true, "grounding": 3, "specificity": 5, "fluency": 2}', False),  # bool
    ('{"verdict": 4, "grounding": 3, "specificity": 5}', False),                  # missing key
    ('{"verdict": 4, "grounding": 3, "specificity": 5, "fluency": 2, "x": 1}', False),
    ("[4, 3, 5, 2]", False),
    ("", False),
    (None, False),
])
def test_parse_reply_is_strict(reply, ok):
    scores, why = J.parse_reply(reply)
    assert (scores is not None) == ok
    assert (why == "") == ok
    if ok:
        assert scores == {"verdict": 4, "grounding": 3, "specificity": 5, "fluency": 2}


def test_prompt_holds_both_rationales_and_answers():
    prompt = J.build_judge_prompt("Face Texture: A is sharper.", "A", "Hair Noise: B is cleaner.", "B")
    assert "Face Texture: A is sharper." in prompt and "Hair Noise: B is cleaner." in prompt
    assert "EXPERT (answer A)" in prompt and "CANDIDATE (answer B)" in prompt
    for c in J.CRITERIA:
        assert f"- {c}:" in prompt


class _FakeChat(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        text = type(self).replies[(len(type(self).seen) - 1) % len(type(self).replies)]
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_endpoint():
    """An OpenAI-style server on 127.0.0.1 only; it stops by itself after 30 s at the latest."""
    server = HTTPServer(("127.0.0.1", 0), _FakeChat)
    server.timeout = 0.2
    stop = threading.Event()
    deadline = time.monotonic() + 30

    def serve():
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _FakeChat.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    stop.set()
    thread.join(timeout=5)
    server.server_close()


def _pairs_and_preds(n=3):
    refs, preds = [], []
    for i in range(n):
        text = "<thinking>\nFace Texture: Image A (Left) keeps pores; Image B (Right) is waxy.\n</thinking>\n<answer>A</answer>"
        refs.append(make_pair([f"p_{i:03d}_merged_c0.jpg", f"p_{i:03d}_merged_c1.jpg"], text))
        preds.append({"id": f"p_{i:03d}", "completion": text.replace("waxy", "smeared")})
    return refs, preds


def test_endpoint_judge_counts_unparseable_and_resumes(fake_endpoint, tmp_path):
    _FakeChat.replies = [GOOD, "I think it is good.", GOOD]
    judge = J.make_judge(fake_endpoint, model="fake-judge", api_key_env="")
    refs, preds = _pairs_and_preds(3)
    cache = tmp_path / "judge_cache.jsonl"
    result = scorers.score(preds, refs, judge=judge, judge_cache=cache, bootstrap=50)
    summary = result.metrics["judge"]
    assert summary["n"] == 3 and summary["parsed"] == 2 and summary["unparseable"] == 1
    assert summary["failed_calls"] == 0
    assert summary["verdict"] == 4 and summary["mean"] == pytest.approx(3.5)
    assert result.per_sample["judge_mean"].isna().sum() == 1
    assert _FakeChat.seen[0]["model"] == "fake-judge" and _FakeChat.seen[0]["temperature"] == 0
    assert len(_FakeChat.seen) == 3
    # A second run reads the cached replies: no new calls, same numbers.
    again = scorers.score(preds, refs, judge=judge, judge_cache=cache, bootstrap=50)
    assert len(_FakeChat.seen) == 3
    assert again.metrics["judge"] == summary
    assert 0 < result.metrics["combined"]["value"] <= 1


def test_endpoint_failure_is_counted_not_fatal(fake_endpoint):
    judge = J.EndpointJudge(fake_endpoint + "/wrong", api_key_env="", retries=0, timeout=5)
    refs, preds = _pairs_and_preds(2)
    res = J.judge_rationales(judge, [r.thinking for r in refs], ["A", "A"], ["x", "y"], ["A", "B"])
    assert res.summary()["failed_calls"] == 2 and res.summary()["parsed"] == 0
    assert "HTTP 404" in res.problems[0]


def test_endpoint_url_must_be_http():
    with pytest.raises(ParameterError, match="http"):
        J.EndpointJudge("ftp://127.0.0.1/v1")


def _tiny_model_dir(tmp_path):
    """A random-init 2-layer GPT-2 and a word-level tokenizer built here, saved as a model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = set(J.RUBRIC.replace("{", " ").replace("}", " ").split()) | set(J.SYSTEM.split())
    words |= {"{", "}", ":", ",", '"', "1", "2", "3", "4", "5"} | set(J.CRITERIA)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]"] + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    config = GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=32, n_layer=2, n_head=2,
                        eos_token_id=2, pad_token_id=0)
    model = GPT2LMHeadModel(config)
    folder = tmp_path / "tiny-judge"
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_local_hf_judge_with_tiny_model(tmp_path):
    import torch

    torch.manual_seed(0)
    folder = _tiny_model_dir(tmp_path)
    judge = J.make_judge(str(folder), max_new_tokens=8)
    assert isinstance(judge, J.HFJudge)
    refs, preds = _pairs_and_preds(2)
    res = J.judge_rationales(judge, [r.thinking for r in refs], ["A", "A"],
                             [rewards.thinking_text(p["completion"]) for p in preds], ["A", "A"])
    # A random model cannot write the rubric's JSON: both replies are counted as unparseable.
    assert all(isinstance(r, str) for r in res.replies)
    s = res.summary()
    assert s["n"] == 2 and s["parsed"] + s["unparseable"] == 2 and s["failed_calls"] == 0
    assert s["unparseable"] == 2 and s["mean"] is None


def test_missing_local_judge_fails_fast(tmp_path, monkeypatch):
    from idiff_lib.core.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="Download it"):
        J.make_judge(str(tmp_path / "no-such-model"))
