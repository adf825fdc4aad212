# SPDX-License-Identifier: MIT
"""Mustache templates end to end: email, sms and push jobs naming a
templateId, added in BullMQ's layout to a real Redis, rendered by real
notifyqd workers into the file spool. The spooled email is parsed with
Python's email package, so what is checked is what a mail client reads.
Missing, malformed and (strict) under-filled templates fail the job with a
reason naming them, and the worker goes on."""
import email
import email.policy
import json

import pytest

from conftest import wait_for
from test_worker_jobs import Jobs, wait_all_done

TEMPLATES = {
    "default/welcome.subject.mustache": "Welcome, {{name}}\n",
    "default/welcome.txt.mustache": "Hi {{name}},\n{{#items}}- {{.}}\n{{/items}}{{> footer}}\n",
    "default/welcome.html.mustache":
        "<p>Hi {{name}},</p>\n<ul>\n{{#items}}\n  <li>{{.}}</li>\n{{/items}}\n</ul>\n"
        "{{{signature}}}\n",
    "default/footer.partial.mustache": "-- {{company}}",
    "acme/welcome.html.mustache": "<h1>ACME welcomes {{name}}</h1>",
    "default/broken.txt.mustache": "fine\n",
    "default/broken.html.mustache": "<ul>\n{{#items}}\n  <li>{{.}}</li>\n{{/item}}\n</ul>\n",
    "default/otp.txt.mustache": "Your code is {{code}}\n",
    "default/otp.subject.mustache": "Sign-in code\n",
}


@pytest.fixture
def templates(tmp_path):
    d = tmp_path / "tpl"
    for rel, text in TEMPLATES.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def start(daemon_factory, jobs, templates, spool, handler="email", templates_key=None):
    queue = {jobs.name: {"handler": handler, "bullmq_queue": jobs.name,
                         "provider": "{type: file, spool_dir: %s}" % spool}}
    d = daemon_factory(queue, extra="templates: %s\n" % (templates_key or templates))
    d.start()
    d.wait_ready(timeout=10)
    return d


def spooled_email(jobs, jid):
    h = jobs.job(jid)
    assert jobs.ids("completed") >= {jid}, h.get("failedReason")
    path = json.loads(h["returnvalue"])["path"]
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=email.policy.default)


def test_email_template_renders_subject_text_and_escaped_html(daemon_factory, templates,
                                                              tmp_path, redis_server):
    jobs = Jobs(redis_server)
    start(daemon_factory, jobs, templates, tmp_path / "spool")
    [jid] = jobs.add({"to": "ann@example.org", "templateId": "welcome",
                      "templateVariables": {"name": "Ann <ann@x> & \"Bo\"",
                                            "items": ["a<b", "c&d"], "company": "Q&A Ltd",
                                            "signature": "<i>The team</i>"}},
                     {"attempts": 3})
    wait_all_done(jobs, 1)
    msg = spooled_email(jobs, jid)
    assert msg["Subject"] == 'Welcome, Ann <ann@x> & "Bo"'
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # Plain text is not escaped; its section and partial are rendered.
    assert text.replace("\r\n", "\n") == 'Hi Ann <ann@x> & "Bo",\n- a<b\n- c&d\n-- Q&A Ltd\n'
    # HTML escapes variables, not {{{raw}}} ones; standalone tags leave no lines.
    assert html.replace("\r\n", "\n") == (
        "<p>Hi Ann &lt;ann@x&gt; &amp; &quot;Bo&quot;,</p>\n<ul>\n"
        "  <li>a&lt;b</li>\n  <li>c&amp;d</li>\n</ul>\n<i>The team</i>\n")
    assert jobs.job(jid)["atm"] == "1"


def test_a_tenant_has_its_own_templates_and_falls_back_to_default(daemon_factory, templates,
                                                                  tmp_path, redis_server):
    jobs = Jobs(redis_server)
    start(daemon_factory, jobs, templates, tmp_path / "spool")
    acme, globex = jobs.add({"to": "a@example.org", "subject": "Hello", "tenantId": "acme",
                             "templateId": "welcome", "templateVariables": {"name": "Ann"}}) + \
        jobs.add({"to": "a@example.org", "tenantId": "globex", "templateId": "welcome",
                  "templateVariables": {"name": "Ann"}})
    wait_all_done(jobs, 2)
    msg = spooled_email(jobs, acme)
    # acme's set has only html: the subject comes from the job, no text part.
    assert msg["Subject"] == "Hello"
    assert msg.get_content_type() == "text/html"
    assert msg.get_content().strip() == "<h1>ACME welcomes Ann</h1>"
    msg = spooled_email(jobs, globex)
    assert msg["Subject"] == "Welcome, Ann"


def test_missing_and_malformed_templates_fail_the_job_naming_them(daemon_factory, templates,
                                                                   tmp_path, redis_server):
    jobs = Jobs(redis_server)
    d = start(daemon_factory, jobs, templates, tmp_path / "spool")
    pid = d.workers(jobs.name)[0]["pid"]
    missing, broken, unsafe = (jobs.add({"to": "a@example.org", "templateId": t},
                                        {"attempts": 5})[0]
                               for t in ("no-such", "broken", "../default/welcome"))
    wait_all_done(jobs, 3)
    assert jobs.ids("failed") == {missing, broken, unsafe}
    h = jobs.job(missing)
    assert h["failedReason"] == ("data.templateId: template 'no-such' not found in %s/default"
                                 % templates)
    assert h["atm"] == "1"  # permanent: no attempt left for a retry
    assert jobs.job(broken)["failedReason"] == (
        "data.templateId: %s/default/broken.html.mustache:4:1: mismatched close tag 'item': "
        "section 'items' opened at 2:1" % templates)
    assert jobs.job(unsafe)["failedReason"] == "data.templateId: must not contain '/'"
    # The worker is unaffected and goes on delivering.
    [ok] = jobs.add({"to": "a@example.org", "templateId": "welcome",
                     "templateVariables": {"name": "Ann"}})
    wait_all_done(jobs, 4)
    assert spooled_email(jobs, ok)["Subject"] == "Welcome, Ann"
    assert d.workers(jobs.name)[0]["pid"] == pid


def test_strict_mode_fails_a_missing_variable_by_name(daemon_factory, templates, tmp_path,
                                                      redis_server):
    jobs = Jobs(redis_server)
    start(daemon_factory, jobs, templates, tmp_path / "spool",
          templates_key="{dir: %s, strict: true}" % templates)
    full, short = jobs.add({"to": "a@example.org", "templateId": "welcome",
                            "templateVariables": {"name": "Ann", "company": "Q",
                                                  "signature": ""}}) + \
        jobs.add({"to": "a@example.org", "templateId": "welcome",
                  "templateVariables": {"name": "Ann", "signature": ""}})
    wait_all_done(jobs, 2)
    assert spooled_email(jobs, full)["Subject"] == "Welcome, Ann"
    assert jobs.job(short)["failedReason"] == (
        "data.templateId: %s/default/footer.partial.mustache:1:4: missing variable 'company'"
        % templates)


def test_sms_takes_its_body_from_the_text_template(daemon_factory, templates, tmp_path,
                                                   redis_server):
    jobs = Jobs(redis_server)
    start(daemon_factory, jobs, templates, tmp_path / "spool", handler="sms")
    [jid] = jobs.add({"to": "+1 555 123 4567", "templateId": "otp",
                      "templateVariables": {"code": "<42>"}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    with open(json.loads(h["returnvalue"])["path"]) as f:
        assert json.load(f)["body"] == "Your code is <42>"


def test_a_reload_reads_changed_templates(daemon_factory, templates, tmp_path, redis_server):
    jobs = Jobs(redis_server)
    d = start(daemon_factory, jobs, templates, tmp_path / "spool")
    [first] = jobs.add({"to": "a@example.org", "templateId": "otp",
                        "templateVariables": {"code": "1"}})
    wait_all_done(jobs, 1)
    assert spooled_email(jobs, first)["Subject"] == "Sign-in code"
    (templates / "default/otp.subject.mustache").write_text("Your code: {{code}}\n")
    old = d.workers(jobs.name)[0]["pid"]
    d.sighup()
    wait_for(lambda: d.ready() and d.workers(jobs.name)[0]["pid"] != old, timeout=10,
             what="a new worker after SIGHUP")
    [second] = jobs.add({"to": "a@example.org", "templateId": "otp",
                         "templateVariables": {"code": "2"}})
    wait_all_done(jobs, 2)
    assert spooled_email(jobs, second)["Subject"] == "Your code: 2"
