"""The oracle: upstream GOT's per-pair metrics and their average, restated from
Ucas-HaoranWei/GOT-OCR2.0, GOT-OCR-2.0-master/GOT/eval/pyevaltools/eval_ocr.py
(`nougat_per_metrics` with heavy_mode 2, and `doc_text_eval`), with NLTK's own functions uncached
and `nltk.edit_distance`. Only the file reading and the printing are left out, and NLTK's own
warnings are silenced.

NLTK 3.10 refuses `edit_distance` on texts over 2,000 characters (a guard against untrusted
input): upstream's script fails on long pages there; the oracle lifts the guard."""

import re
import warnings

import jieba
import nltk
from nltk.metrics import distance, f_measure, precision, recall
from nltk.translate import meteor_score

distance.MAX_DISTANCE_INPUT_LEN = 10**7


def contain_chinese_string(text):
    return bool(re.compile(r"[\u4e00-\u9fa5]").search(text))


def nougat_per_metrics(pred, gt, minlen=1, with_meteor=True):
    metrics = {}
    if len(pred) < minlen or len(gt) < minlen:
        return metrics
    if contain_chinese_string(gt) or contain_chinese_string(pred):
        reference = jieba.lcut(gt)
        hypothesis = jieba.lcut(pred)
    else:
        reference = gt.split()
        hypothesis = pred.split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics["bleu"] = nltk.translate.bleu([reference], hypothesis)
    if with_meteor:
        metrics["meteor"] = meteor_score.meteor_score([reference], hypothesis)
    reference = set(reference)
    hypothesis = set(hypothesis)
    metrics["f_measure"] = f_measure(reference, hypothesis)
    metrics["precision"] = precision(reference, hypothesis)
    metrics["recall"] = recall(reference, hypothesis)
    metrics["edit_dist"] = nltk.edit_distance(pred, gt) / max(len(pred), len(gt))
    return metrics


def doc_text_eval(predicts, with_meteor=True, per_pair=nougat_per_metrics):
    """`predicts`: upstream's results, a list of {"label", "answer"}; called as upstream calls it
    (`per_pair`: the same function, memoized by a test)."""
    result = []
    for ann in predicts:
        ans = per_pair(ann["label"], ann["answer"], with_meteor=with_meteor)
        if len(ans) == 0:
            continue
        result.append(ans)
    mean_dict = {"eval question num": len(result)}
    for k in result[0]:
        mean_dict[k] = 0
    for each in result:
        for k, v in each.items():
            mean_dict[k] += v
    for k in mean_dict:
        if k != "eval question num":
            mean_dict[k] /= len(result)
    return mean_dict
