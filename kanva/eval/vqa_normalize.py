"""Answer normalization of the VQA family's official evaluators, as rules and tables.

Two processors exist and they differ in small ways that change published figures, so both are kept:

- `vqa_punctuation` + `vqa_digit_article`: the VQA evaluation tool (VQAv2; the VizWiz tool is the same
  code). Punctuation: each mark of PUNCT is deleted when it touches a space or the text holds a
  digit-comma-digit, else replaced by a space; then periods not followed by a digit are deleted (the
  tool passes `re.UNICODE` where `re.sub` takes `count`, so at most 32 are: kept here, it is the
  rule that produced the figures). Digits/articles: lower-case, split on whitespace, number words
  zero..ten (and "none") become digits, a/an/the are dropped, contractions missing their apostrophe
  get it back (the tool's table, most entries with a typographic apostrophe ’).
- `evalai_answer`: EvalAI's answer processor (TextVQA in LLaVA's evaluation; LLaVA also applies it to
  VQAv2/VizWiz answers before upload): lower-case, delete "," and "?", "'s" -> " 's", then the same
  punctuation and digit/article rules with the table in plain apostrophes (').
"""

from __future__ import annotations

import re

PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# The tools' expression, verbatim in effect: "(?!<=\d)" is a lookahead for the text "<=digit" (a typo
# for a lookbehind in the original), so a period is deleted unless a digit follows it.
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD_LIMIT = 32  # re.UNICODE's value, passed as `count` by both tools

# key -> expansion, with plain apostrophes (EvalAI's table). Pairs separated by spaces, "key=value".
_CONTRACTIONS_PLAIN = dict(
    pair.split("=")
    for pair in (
        "aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've "
        "couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've "
        "hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's "
        "howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd "
        "itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't "
        "mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've "
        "neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at "
        "'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've "
        "shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd "
        "somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's "
        "someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll "
        "someones=someone's somethingd=something'd somethingd've=something'd've "
        "something'dve=something'd've somethingll=something'll thats=that's thered=there'd "
        "thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd "
        "theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas "
        "wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're "
        "whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd "
        "whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're "
        "whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've "
        "wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've "
        "y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've "
        "youll=you'll youre=you're youve=you've"
    ).split()
)


def _typographic(table: dict[str, str]) -> dict[str, str]:
    """The VQA tool's table: the same entries, written with ’ except these plain ones."""
    plain_values = {"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"}
    plain_keys = {"couldn'tve", "hadn'tve"}
    out = {}
    for k, v in table.items():
        key = k if k in plain_keys else k.replace("'", "\u2019")
        out[key] = v if k in plain_values else v.replace("'", "\u2019")
    return out


CONTRACTIONS_EVALAI = _CONTRACTIONS_PLAIN
CONTRACTIONS_VQA = _typographic(_CONTRACTIONS_PLAIN)


def vqa_punctuation(text: str) -> str:
    out = text
    spaced_or_number = COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in PUNCT:
        # The test reads the input text, the replacement acts on the running output (as the tool does).
        if spaced_or_number or (p + " " in text or " " + p in text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, count=_PERIOD_LIMIT)


def _digit_article(text: str, contractions: dict[str, str]) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(contractions.get(w, w) for w in words)


def vqa_digit_article(text: str) -> str:
    return _digit_article(text, CONTRACTIONS_VQA)


def vqa_answer(text: str) -> str:
    """A prediction as the VQA/VizWiz tools compare it: whitespace, punctuation, digits and articles."""
    s = text.replace("\n", " ").replace("\t", " ").strip()
    return vqa_digit_article(vqa_punctuation(s))


def evalai_answer(text: str) -> str:
    """EvalAI's answer processor (TextVQA; LLaVA's upload conversion for VQAv2 and VizWiz)."""
    s = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    s = s.replace("\n", " ").replace("\t", " ").strip()
    return _digit_article(vqa_punctuation(s), CONTRACTIONS_EVALAI)


def soft_accuracy(prediction: str, humans: list[str]) -> float:
    """min(#humans agreeing / 3, 1), averaged over the subsets leaving one human answer out."""
    if not humans:
        return 0.0
    total = 0.0
    for i in range(len(humans)):
        agree = sum(1 for j, h in enumerate(humans) if j != i and h == prediction)
        total += min(1.0, agree / 3)
    return total / len(humans)
