"""`kb plan …` (the eight steps, research tasks, 履职菜单), `kb minutes …` (speeches and the
协商纪要), `kb outcome …` (批示, 交办, 办理, 回头看), `kb dashboard`, `kb report` and `kb cycle import`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .cli import EXIT_OK, open_kb, print_json
from .cli_args import date_value, int_between, year_value
from .cycle import STATUSES, TASK_KINDS, TASK_STATUSES, InvalidCycleEdit, Minutes, Plan, Proposal
from .cycle.model import RATINGS, SPEAKER_ROLES
from .exports import _chinese_date


# -- printing ------------------------------------------------------------------------------
def _print_plan(plan: Plan) -> None:
    print(f"{plan.title}（{plan.format}，{plan.year or ''}）")
    print(f"八步工作法：已完成 {plan.done_count}/8，当前：{plan.current.name if plan.done_count < 8 else '全部完成'}")
    late = {s.step for s in plan.overdue()}
    for s in plan.steps:
        mark = "✓" if s.done else ("!" if s.step in late else " ")
        parts = [f"负责 {s.owner}" if s.owner else "", f"期限 {s.due}" if s.due else "",
                 f"完成 {s.done}" if s.done else ("已逾期" if s.step in late else ""), s.note]
        print(f"  {mark} {s.step}. {s.name}  " + "  ".join(p for p in parts if p))
    if plan.tasks:
        print("调研任务：")
        for t in plan.tasks:
            who = "、".join(t.members)
            print(f"  [{t.task_id}] {t.kind_label}·{t.title}  {t.date or ''} {t.place or ''}  {t.status}"
                  + (f"  负责：{t.assignee}" if t.assignee else "") + (f"  成员：{who}" if who else ""))
            if t.material:
                print(f"       收集：{t.material}")
            if t.report:
                print(f"       报告：{t.report}")
            for r in t.reports:
                print(f"       调研报告文件：{r.file_name}（《{r.title}》，{r.author or ''} {r.date or ''}，doc_id {r.doc_id}）")
    if plan.signups:
        print("履职菜单报名：" + "、".join(f"{s.member}（{s.status}）" for s in plan.signups))


def _print_minutes(m: Minutes) -> None:
    print(m.title.removeprefix("协商纪要："))
    print(f"协商纪要第 {m.version} 版（{m.created_at.replace('T', ' ')}，{m.created_by}）：{m.change}")
    print("一、协商概况")
    for label, value in m.facts:
        print(f"  {label}：{value}")
    print("二、主要意见建议")
    n = 0
    for t_no, theme in enumerate(m.themes, start=1):
        print(f"  （{t_no}）{theme.theme}")
        for item in theme.items:
            n += 1
            print(f"    {n}. [{item.proposal_id}] {item.text}{'（经编辑）' if item.edited else ''}")
            print(f"       —— {item.byline}")
            if item.citation:
                print(f"       依据：{item.citation.get('formatted')}：“{item.citation.get('quote')}”")
    if m.instructions:
        print("三、领导批示")
        for i in m.instructions:
            print(f"  {i.leader}（{_chinese_date(i.date)}）：{i.text}")


def _print_proposal(n: int, p: Proposal) -> None:
    print(f"{n}. [{p.proposal_id}] （{p.theme}）{p.text}")
    print(f"   —— {p.source.get('speaker')}（{SPEAKER_ROLES.get(p.source.get('speaker_role'), '')}）  状态：{p.status}")
    for i in p.instructions:
        print(f"   批示：{i.leader}（{i.date or ''}）：{i.text}")
    for dept in p.departments:
        steps = " → ".join(f"{h.status}{'(' + h.date + ')' if h.date else ''}" for h in p.history(dept))
        print(f"   {dept}：{steps}")
        reply = next((h.reply for h in reversed(p.history(dept)) if h.reply), "")
        if reply:
            print(f"      答复：{reply}")


def _out(args, data, text) -> int:
    if args.json:
        print_json(data)
    else:
        text()
    return EXIT_OK


# -- kb plan --------------------------------------------------------------------------------
def cmd_plan_show(args) -> int:
    cycle = open_kb(args).cycle
    if args.json:
        print_json(cycle.topic_record(args.topic))
    else:
        _print_plan(cycle.plan(args.topic))
    return EXIT_OK


def cmd_plan_step(args) -> int:
    step = open_kb(args).cycle.set_step(args.topic, args.step, owner=args.owner, due=args.due, done=args.done,
                                        note=args.note, undone=args.undone)
    return _out(args, step.as_dict(), lambda: print(
        f"已更新第 {step.step} 步 {step.name}：负责 {step.owner or '—'}，期限 {step.due or '—'}，完成 {step.done or '未完成'}"))


def cmd_plan_task(args) -> int:
    task = open_kb(args).cycle.add_task(args.topic, args.title, kind=args.kind, place=args.place, date=args.date,
                                        members=args.members or (), material=args.material or "",
                                        assignee=args.assignee)
    return _out(args, task.as_dict(), lambda: print(f"已添加调研任务 {task.task_id}：{task.kind_label}·{task.title}"))


def cmd_plan_update(args) -> int:
    report = Path(args.report_file).read_text(encoding="utf-8") if args.report_file else args.report
    task = open_kb(args).cycle.update_task(args.task_id, status=args.status, report=report, assignee=args.assignee,
                                           members=args.members, title=args.title, kind=args.kind, place=args.place,
                                           date=args.date, material=args.material)
    return _out(args, task.as_dict(), lambda: print(f"已更新调研任务 {task.task_id}：{task.title}（{task.status}）"))


def cmd_plan_attach(args) -> int:
    task = open_kb(args).cycle.attach_report(args.task_id, args.file, title=args.title, date=args.date)
    report = next(r for r in task.reports if r.file_name == Path(args.file).name)
    return _out(args, task.as_dict(), lambda: print(
        f"已上传调研报告《{report.title}》到任务 {task.task_id}（{task.title}），已索引为“调研报告”并关联议题 {task.topic_id}"
        f"（doc_id {report.doc_id}；工作人员可用 kb pack add 把其中段落加入汇编）"))


def cmd_plan_mine(args) -> int:
    kb = open_kb(args)
    tasks = kb.cycle.my_tasks(args.member)

    def text() -> None:
        if not tasks:
            print(f"{args.member or kb.user.name} 没有分派的调研任务。")
        for t in tasks:
            print(f"[{t.task_id}] {t.topic_id}  {t.kind_label}·{t.title}  {t.date or ''} {t.place or ''}  {t.status}")

    return _out(args, [t.as_dict() for t in tasks], text)


def cmd_plan_menu(args) -> int:
    menu = open_kb(args).cycle.menu(args.year)

    def text() -> None:
        for entry in menu:
            names = "、".join(f"{s['member']}（{s['status']}）" for s in entry["signups"]) or "暂无报名"
            print(f"{entry['topic_id']}  {entry['title']}  · {entry['format']} · 会议 {entry['meeting_date'] or '待定'}"
                  f"\n    报名：{names}")

    return _out(args, menu, text)


def cmd_plan_signup(args) -> int:
    signup = open_kb(args).cycle.sign_up(args.topic, member=args.member)
    return _out(args, signup.as_dict(), lambda: print(f"{signup.member} 已报名 {signup.topic_id}（{signup.status}）"))


def cmd_plan_confirm(args) -> int:
    signup = open_kb(args).cycle.confirm_signup(args.topic, args.member)
    return _out(args, signup.as_dict(), lambda: print(f"已确认 {signup.member} 参加 {signup.topic_id}"))


# -- kb minutes -----------------------------------------------------------------------------
def cmd_minutes_speech(args) -> int:
    text = Path(args.file).read_text(encoding="utf-8") if args.file else args.text
    if not text:
        raise InvalidCycleEdit("没有发言内容", hint="用 --text 发言原文，或 --file 发言稿.txt")
    speech = open_kb(args).cycle.add_speech(args.topic, args.speaker, text, role=args.speaker_role,
                                            affiliation=args.affiliation or "", theme=args.theme or "")
    return _out(args, speech.as_dict(), lambda: print(f"已登记 {speech.speaker}（{speech.role_label}）的发言 {speech.speech_id}"))


def cmd_minutes_speeches(args) -> int:
    speeches = open_kb(args).cycle.speeches(args.topic)

    def text() -> None:
        if not speeches:
            print("还没有登记发言。用 kb minutes speech 议题 --speaker 姓名 --text 发言 登记。")
        for s in speeches:
            print(f"{s.ordinal}. [{s.speech_id}] {s.speaker}（{s.role_label}{'，' + s.affiliation if s.affiliation else ''}）"
                  f"{'  主题：' + s.theme if s.theme else ''}\n   {s.text}")

    return _out(args, [s.as_dict() for s in speeches], text)


def cmd_minutes_draft(args) -> int:
    kb = open_kb(args)
    minutes = kb.cycle.draft_minutes(args.topic, expected_version=args.version)
    result = kb.cycle.export_minutes(args.topic, Path(args.out).suffix.lstrip(".") or "docx", args.out) if args.out else None
    if args.json:
        print_json(dict(minutes.as_dict(), exported=result.as_dict() if result else None))
        return EXIT_OK
    cited = sum(1 for i in minutes.items if i.citation)
    print(f"已起草协商纪要第 {minutes.version} 版：{len(minutes.themes)} 个主题、{len(minutes.items)} 条建议"
          f"（{cited} 条找到政策依据）")
    if result:
        print(f"已导出：{result.path}")
    print(f"查看：kb minutes show {minutes.topic_id}    修改：kb minutes edit {minutes.topic_id} --fact 地点=…")
    return EXIT_OK


def cmd_minutes_show(args) -> int:
    minutes = open_kb(args).cycle.minutes(args.topic, args.version)
    return _out(args, minutes.as_dict(), lambda: _print_minutes(minutes))


def cmd_minutes_edit(args) -> int:
    fact = None
    if args.fact:
        if "=" not in args.fact:
            raise InvalidCycleEdit(f"--fact 应写成“项目=内容”，“{args.fact}”不是", hint="例如 --fact 地点=市政协机关三楼")
        fact = tuple(args.fact.split("=", 1))
    if args.move and not args.theme:
        raise InvalidCycleEdit("移动建议要给出目标主题", hint="例如 --move 3 --theme 补贴精准化")
    minutes = open_kb(args).cycle.edit_minutes(
        args.topic, expected_version=args.version, fact=fact, move=(args.move, args.theme) if args.move else None,
        drop=args.drop, text=(args.reword, args.text) if args.reword else None)
    return _out(args, minutes.as_dict(), lambda: print(f"已保存协商纪要第 {minutes.version} 版：{minutes.change}"))


def cmd_minutes_export(args) -> int:
    result = open_kb(args).cycle.export_minutes(args.topic, args.format, args.out, version=args.version)
    return _out(args, result.as_dict(), lambda: print(f"已导出协商纪要第 {result.version} 版（{result.items} 条建议）：{result.path}"))


# -- kb outcome -----------------------------------------------------------------------------
def cmd_outcome_list(args) -> int:
    kb = open_kb(args)
    proposals = kb.cycle.proposals(args.topic)

    def text() -> None:
        if not proposals:
            print("还没有意见建议：先起草协商纪要（kb minutes draft 议题）。")
        for n, p in enumerate(proposals, start=1):
            _print_proposal(n, p)

    return _out(args, [p.as_dict() for p in proposals], text)


def cmd_outcome_instruct(args) -> int:
    kb = open_kb(args)
    pid = kb.cycle.resolve_proposal(args.topic, args.proposal) if args.proposal else None
    instruction = kb.cycle.add_instruction(args.topic, args.leader, args.text, date=args.date, proposal_id=pid)
    return _out(args, instruction.as_dict(), lambda: print(f"已登记 {instruction.leader} 的批示 {instruction.instruction_id}"))


def cmd_outcome_assign(args) -> int:
    kb = open_kb(args)
    proposal = kb.cycle.assign(kb.cycle.resolve_proposal(args.topic, args.proposal), args.dept, date=args.date,
                               note=args.note or "")
    return _out(args, proposal.as_dict(), lambda: print(f"已交办：{'、'.join(proposal.departments)}"))


def cmd_outcome_status(args) -> int:
    kb = open_kb(args)
    proposal = kb.cycle.set_status(kb.cycle.resolve_proposal(args.topic, args.proposal), args.dept, args.status,
                                   date=args.date, reply=args.reply or "")
    return _out(args, proposal.as_dict(), lambda: print(f"{args.dept}：{args.status}（这条建议现为 {proposal.status}）"))


def cmd_outcome_review(args) -> int:
    review = open_kb(args).cycle.add_review(args.topic, args.findings, date=args.date, reviewer=args.reviewer or "",
                                            rating=args.rating or "", followup=args.followup or "",
                                            next_topic=args.next_topic)
    return _out(args, review.as_dict(), lambda: print(
        f"已登记回头看 {review.review_id}" + (f"，转为议题 {review.next_topic_id}" if review.next_topic_id else "")))


# -- dashboard, report, import ----------------------------------------------------------------
def _print_dashboard(board) -> None:
    t = board.totals
    rate = f"{t['adoption_rate']:.0%}" if t["adoption_rate"] is not None else "—"
    print(f"{board.year}年度协商工作台（统计至 {board.on}）：议题 {t['topics']} 个，逾期步骤 {t['overdue_steps']} 个，"
          f"意见建议 {t['proposals']} 件次，总体采纳率 {rate}，待回头看 {t['review_due']} 个")
    for row in board.plan.itertuples(index=False):
        late = f"  逾期：{row.逾期步骤}" if row.逾期步骤 else ""
        print(f"  {row.会议日期 or '日期待定'}  {row.协商形式}  {row.议题}  {row.已完成步骤}  {row.当前步骤}{late}")
    if not board.adoption.empty:
        print("各部门采纳率：")
        for row in board.adoption.itertuples(index=False):
            rate = f"{row.采纳率:.0%}" if row.采纳率 == row.采纳率 and row.采纳率 is not None else "—"
            print(f"  {row.部门}：交办 {row.交办}，已采纳 {row.已采纳}，部分采纳 {row.部分采纳}，未采纳 {row.未采纳}，"
                  f"办理中 {row.办理中}，采纳率 {rate}")
    due = board.review_due[board.review_due["状态"] != "已回头看"] if not board.review_due.empty else board.review_due
    for row in due.itertuples(index=False):
        print(f"  回头看：{row.议题}  应在 {row.回头看应在}  {row.状态}")


def cmd_dashboard(args) -> int:
    kb = open_kb(args)
    if args.export:
        if not args.out:
            raise InvalidCycleEdit("导出要给出 --out 文件", hint="例如 --export html --out 年度协商.html")
        result = kb.cycle.export_report(args.year, args.export, args.out, on=args.on)
        return _out(args, result.as_dict(), lambda: print(f"已导出年度协商工作报告：{result.path}"))
    board = kb.cycle.dashboard(args.year, on=args.on)
    return _out(args, board.as_dict(), lambda: _print_dashboard(board))


def cmd_report(args) -> int:
    fmt = Path(args.out).suffix.lstrip(".").lower()
    result = open_kb(args).cycle.export_report(args.year, fmt, args.out, on=args.on)
    return _out(args, result.as_dict(), lambda: print(f"已导出年度协商工作报告：{result.path}"))


def cmd_cycle_import(args) -> int:
    report = open_kb(args).cycle.import_yaml(args.file)
    return _out(args, report, lambda: print(
        f"已导入 {len(report['topics'])} 个议题的协商全流程（新增往期议题 {len(report['topics_added'])} 个，"
        f"起草纪要 {len(report['minutes_drafted'])} 份，办理记录 {report['handling_steps']} 条）"))


# -- parsers ----------------------------------------------------------------------------------
def _list_arg(value: str) -> list[str]:
    return [v.strip() for v in value.replace("，", ",").replace("、", ",").split(",") if v.strip()]


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `kb plan …`, `kb minutes …`, `kb outcome …`, `kb dashboard`, `kb report`, `kb cycle import`."""
    plan = subparsers.add_parser("plan", help="协商工作计划：八步工作法、调研任务、履职菜单").add_subparsers(
        dest="plan_command", required=True)
    p = plan.add_parser("show", parents=[common], help="议题的八个步骤、调研任务和报名（--json 含发言、建议、批示、办理、回头看）")
    p.add_argument("topic")
    p.set_defaults(func=cmd_plan_show)

    p = plan.add_parser("step", parents=[common], help="设置一个步骤的负责人、期限、完成日期、备注")
    p.add_argument("topic")
    p.add_argument("step", help="步骤序号 1–8 或名称（如 实施调研计划）")
    p.add_argument("--owner", help="负责的专委会或处室")
    p.add_argument("--due", type=date_value, metavar="DATE", help="期限")
    p.add_argument("--done", type=date_value, metavar="DATE", help="完成日期")
    p.add_argument("--undone", action="store_true", help="取消完成标记")
    p.add_argument("--note", help="备注")
    p.set_defaults(func=cmd_plan_step)

    p = plan.add_parser("task", parents=[common], help="添加调研任务（实地调研、考察学习、资料收集、调研报告）")
    p.add_argument("topic")
    p.add_argument("title")
    p.add_argument("--kind", default="实地调研", help="类型：" + "、".join(TASK_KINDS.values()))
    p.add_argument("--place", help="地点")
    p.add_argument("--date", type=date_value, metavar="DATE")
    p.add_argument("--members", type=_list_arg, help="参加委员，逗号或顿号分隔")
    p.add_argument("--material", help="要收集的资料")
    p.add_argument("--assignee", help="负责人")
    p.set_defaults(func=cmd_plan_task)

    p = plan.add_parser("update", parents=[common], help="更新调研任务：状态、调研报告（委员只能改自己的任务）")
    p.add_argument("task_id")
    p.add_argument("--status", choices=TASK_STATUSES)
    p.add_argument("--report", help="调研报告或情况说明")
    p.add_argument("--report-file", help="从文件读入调研报告（UTF-8 文本）")
    p.add_argument("--assignee", help="改派负责人（工作人员）")
    p.add_argument("--members", type=_list_arg, help="参加委员（工作人员）")
    p.add_argument("--title", help="任务名称（工作人员）")
    p.add_argument("--kind", help="任务类型（工作人员）：" + "、".join(TASK_KINDS.values()))
    p.add_argument("--place", help="地点（工作人员）")
    p.add_argument("--date", type=date_value, metavar="DATE", help="日期（工作人员）")
    p.add_argument("--material", help="要收集的资料（工作人员）")
    p.set_defaults(func=cmd_plan_update)

    p = plan.add_parser("attach", parents=[common],
                        help="上传调研报告文件到调研任务：索引为“调研报告”并关联议题（委员只能传自己的任务）")
    p.add_argument("task_id")
    p.add_argument("file", help="报告文件（.docx .pdf .txt .md .html）")
    p.add_argument("--title", help="报告标题（默认取文件中的标题）")
    p.add_argument("--date", type=date_value, metavar="DATE", help="报告日期（默认今天）")
    p.set_defaults(func=cmd_plan_attach)

    p = plan.add_parser("mine", parents=[common], help="我的调研任务（工作人员可用 --member 看某位委员的）")
    p.add_argument("--member")
    p.set_defaults(func=cmd_plan_mine)

    p = plan.add_parser("menu", parents=[common], help="履职菜单：年度议题和报名情况")
    p.add_argument("--year", type=year_value)
    p.set_defaults(func=cmd_plan_menu)

    p = plan.add_parser("signup", parents=[common], help="报名参加履职菜单中的议题（工作人员可用 --member 代为报名）")
    p.add_argument("topic")
    p.add_argument("--member")
    p.set_defaults(func=cmd_plan_signup)

    p = plan.add_parser("confirm", parents=[common], help="确认委员的报名（工作人员）")
    p.add_argument("topic")
    p.add_argument("member")
    p.set_defaults(func=cmd_plan_confirm)

    minutes = subparsers.add_parser("minutes", help="委员发言与协商纪要：登记、起草、修改、导出").add_subparsers(
        dest="minutes_command", required=True)
    p = minutes.add_parser("speech", parents=[common], help="登记会上的发言（确定委员发言）")
    p.add_argument("topic")
    p.add_argument("--speaker", required=True)
    p.add_argument("--text", help="发言原文")
    p.add_argument("--file", help="发言稿文件（UTF-8 文本）")
    p.add_argument("--speaker-role", default="member", help="发言人身份：" + "、".join(f"{k}（{v}）" for k, v in SPEAKER_ROLES.items()))
    p.add_argument("--affiliation", help="界别或单位")
    p.add_argument("--theme", help="纪要中归入的主题")
    p.set_defaults(func=cmd_minutes_speech)

    p = minutes.add_parser("speeches", parents=[common], help="列出议题的发言")
    p.add_argument("topic")
    p.set_defaults(func=cmd_minutes_speeches)

    p = minutes.add_parser("draft", parents=[common], help="由发言起草协商纪要（每条建议注明发言人和政策依据）")
    p.add_argument("topic")
    p.add_argument("--out", help="同时导出到文件（.docx / .html / .md）")
    p.add_argument("--version", type=int_between(0), help="所依据的纪要版本：有人已保存更新的版本时拒绝")
    p.set_defaults(func=cmd_minutes_draft)

    p = minutes.add_parser("show", parents=[common], help="查看协商纪要（默认最新版）")
    p.add_argument("topic")
    p.add_argument("--version", type=int_between(1))
    p.set_defaults(func=cmd_minutes_show)

    p = minutes.add_parser("edit", parents=[common], help="修改协商纪要：概况、归类、删去、改写")
    p.add_argument("topic")
    p.add_argument("--fact", help="概况一项：项目=内容（内容为空即删除），如 地点=市政协机关三楼")
    p.add_argument("--move", help="把第 N 条建议（或建议编号）移到 --theme 主题下")
    p.add_argument("--theme")
    p.add_argument("--drop", help="删去第 N 条建议（或建议编号）")
    p.add_argument("--reword", help="改写第 N 条建议的文字（用 --text 给出，标注“经编辑”）")
    p.add_argument("--text")
    p.add_argument("--version", type=int_between(1), help="所改的纪要版本")
    p.set_defaults(func=cmd_minutes_edit)

    p = minutes.add_parser("export", parents=[common], help="导出协商纪要为 docx / html / md")
    p.add_argument("topic")
    p.add_argument("--format", choices=("docx", "html", "md"), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--version", type=int_between(1))
    p.set_defaults(func=cmd_minutes_export)

    outcome = subparsers.add_parser("outcome", help="协商成果：批示、交办、办理、反馈、回头看").add_subparsers(
        dest="outcome_command", required=True)
    p = outcome.add_parser("list", parents=[common], help="意见建议及其批示和办理情况")
    p.add_argument("topic", nargs="?")
    p.set_defaults(func=cmd_outcome_list)

    p = outcome.add_parser("instruct", parents=[common], help="登记领导批示（对纪要，或 --proposal 对某条建议）")
    p.add_argument("topic")
    p.add_argument("--leader", required=True, help="批示领导")
    p.add_argument("--text", required=True)
    p.add_argument("--date", type=date_value, metavar="DATE")
    p.add_argument("--proposal", help="纪要中建议的序号或编号")
    p.set_defaults(func=cmd_outcome_instruct)

    p = outcome.add_parser("assign", parents=[common], help="把一条建议交办给部门")
    p.add_argument("topic")
    p.add_argument("proposal", help="纪要中建议的序号或编号")
    p.add_argument("--dept", required=True, type=_list_arg, help="部门，逗号或顿号分隔")
    p.add_argument("--date", type=date_value, metavar="DATE")
    p.add_argument("--note", help="交办说明")
    p.set_defaults(func=cmd_outcome_assign)

    p = outcome.add_parser("status", parents=[common], help="更新部门办理状态：" + " → ".join(STATUSES))
    p.add_argument("topic")
    p.add_argument("proposal", help="纪要中建议的序号或编号")
    p.add_argument("--dept", required=True)
    p.add_argument("--status", required=True, choices=STATUSES)
    p.add_argument("--date", type=date_value, metavar="DATE")
    p.add_argument("--reply", help="部门答复")
    p.set_defaults(func=cmd_outcome_status)

    p = outcome.add_parser("review", parents=[common], help="登记回头看（可转为下一年的议题）")
    p.add_argument("topic")
    p.add_argument("--findings", required=True)
    p.add_argument("--date", type=date_value, metavar="DATE")
    p.add_argument("--reviewer")
    p.add_argument("--rating", choices=RATINGS)
    p.add_argument("--followup", help="后续跟踪")
    p.add_argument("--next-topic", help="由此形成的下一年议题（编号或标题）")
    p.set_defaults(func=cmd_outcome_review)

    p = subparsers.add_parser("dashboard", parents=[common], help="协商工作台：年度计划、进度、办理和采纳、回头看")
    p.add_argument("--year", type=year_value)
    p.add_argument("--on", type=date_value, metavar="DATE", help="按这一天统计逾期（默认今天）")
    p.add_argument("--export", choices=("html", "docx"), help="导出年度协商工作报告")
    p.add_argument("--out", help="导出的文件")
    p.set_defaults(func=cmd_dashboard)

    p = subparsers.add_parser("report", parents=[common], help="导出年度协商工作报告（.html 或 .docx，图表为图片）")
    p.add_argument("--year", type=year_value)
    p.add_argument("--on", type=date_value, metavar="DATE", help="按这一天统计逾期（默认今天）")
    p.add_argument("--out", required=True, help="输出文件：年度协商.html 或 年度协商.docx")
    p.set_defaults(func=cmd_report)

    cycle = subparsers.add_parser("cycle", help="协商全流程记录：导入").add_subparsers(dest="cycle_command", required=True)
    p = cycle.add_parser("import", parents=[common], help="从 YAML 导入工作计划、发言、纪要、批示、办理和回头看（可重复运行）")
    p.add_argument("file")
    p.set_defaults(func=cmd_cycle_import)
