"""Loading a consultation cycle from YAML (`kb cycle import corpus/topics.yaml`): earlier topics,
then per topic its plan, research tasks, sign-ups, speeches, minutes (drafted, then staff's
edits), instructions, departments' handling and 回头看. Everything goes through the service,
so it is checked and audited like a change made by hand, and a second run adds nothing."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import TopicNotFound
from .model import NEXT_STATUS, InvalidCycleEdit


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InvalidCycleEdit(f"找不到文件 {path}", hint="例如 kb cycle import corpus/topics.yaml") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidCycleEdit(f"{path} 格式错误（{type(exc).__name__}）", hint="检查 YAML 缩进与冒号") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cycle", []), list):
        raise InvalidCycleEdit(f"{path} 里没有 cycle 列表", hint="格式见 corpus/topics.yaml 的 cycle 部分")
    return data


def import_cycle(service, path: Path) -> dict:
    data = _load(path)
    report = {"topics_added": [], "topics": [], "minutes_drafted": [], "handling_steps": 0}
    for entry in data.get("earlier_topics") or []:
        try:
            service.topics.get(entry.get("id") or entry["title"])
        except TopicNotFound:
            topic = service.topics.add(entry["title"], format=entry.get("format") or "其他", year=entry.get("year"),
                                       lead=entry.get("lead"), sectors=entry.get("sectors") or (),
                                       keywords=entry.get("keywords") or (),
                                       description=entry.get("description") or "",
                                       step=entry.get("current_step") or 1, topic_id=entry.get("id"))
            report["topics_added"].append(topic.topic_id)
    for entry in data.get("cycle") or []:
        topic = service.topics.get(str(entry["topic"]))
        report["topics"].append(topic.topic_id)
        _plan(service, topic, entry)
        if _minutes(service, topic, entry):
            report["minutes_drafted"].append(topic.topic_id)
        report["handling_steps"] += _outcomes(service, topic, entry)
        for r in entry.get("reviews") or []:
            service.add_review(topic, r["findings"], date=r.get("date"), reviewer=r.get("reviewer") or "",
                               rating=r.get("rating") or "", followup=r.get("followup") or "",
                               next_topic=r.get("next_topic"))
    return report


def _plan(service, topic, entry: dict) -> None:
    for step, values in (entry.get("steps") or {}).items():
        values = values or {}
        service.set_step(topic, step, owner=values.get("owner"), due=values.get("due"), done=values.get("done"),
                         note=values.get("note"))
    for t in entry.get("tasks") or []:
        task = service.add_task(topic, t["title"], kind=t.get("kind") or "visit", place=t.get("place"),
                                date=t.get("date"), members=t.get("members") or (), material=t.get("material") or "",
                                assignee=t.get("assignee"))
        if t.get("status") or t.get("report"):
            service.update_task(task.task_id, status=t.get("status"), report=t.get("report"))
    for s in entry.get("signups") or []:
        s = {"member": s} if isinstance(s, str) else s
        service.sign_up(topic, member=s["member"])
        if s.get("confirmed"):
            service.confirm_signup(topic, s["member"])
    for s in entry.get("speeches") or []:
        service.add_speech(topic, s["speaker"], s["text"], role=s.get("role") or "member",
                           affiliation=s.get("affiliation") or "", theme=s.get("theme") or "",
                           proposals=s.get("proposals") or ())


def _minutes(service, topic, entry: dict) -> bool:
    """Draft once, then apply staff's edits as they were made; an existing minutes is left alone."""
    spec = entry.get("minutes")
    if not spec or not service.speeches(topic):
        return False
    if service.minutes_history(topic):
        return False
    service.draft_minutes(topic)
    for label, value in spec.get("facts") or []:
        service.edit_minutes(topic, fact=(label, value))
    for edit in spec.get("edits") or []:
        if "move" in edit:
            service.edit_minutes(topic, move=(str(edit["move"][0]), edit["move"][1]))
        if "drop" in edit:
            service.edit_minutes(topic, drop=str(edit["drop"]))
    return True


def _proposal_id(service, topic, ref) -> str | None:
    """A proposal named by its number in the minutes, or by words only its text contains."""
    if ref in (None, ""):
        return None
    items = service.minutes(topic).items
    if isinstance(ref, int):
        return items[ref - 1].proposal_id
    found = [i for i in items if str(ref) in i.text]
    if len(found) != 1:
        raise InvalidCycleEdit(f"议题 {topic.topic_id} 的纪要中有 {len(found)} 条建议含“{ref}”",
                               hint="用只出现在一条建议里的词，或用序号")
    return found[0].proposal_id


def _outcomes(service, topic, entry: dict) -> int:
    if not service.minutes_history(topic):
        return 0
    for i in entry.get("instructions") or []:
        service.add_instruction(topic, i["leader"], i["text"], date=i.get("date"),
                                proposal_id=_proposal_id(service, topic, i.get("proposal")))
    added = 0
    for o in entry.get("outcomes") or []:
        pid = _proposal_id(service, topic, o["proposal"])
        done = service.proposal(pid).history(o["department"])
        for step in (o.get("steps") or [])[len(done):]:  # only the steps not applied yet
            status, date, reply = (list(step) + [None, None])[:3]
            if status not in NEXT_STATUS.get(done[-1].status if done else None, ()) and done:
                break
            service.set_status(pid, o["department"], status, date=date, reply=reply or "")
            done = service.proposal(pid).history(o["department"])
            added += 1
    return added
