#!/usr/bin/env python3
"""Walks the operator console and the client portal in headless Chromium, as a person would.

Run by Tests/IntegrationTests/ConsoleBrowserTests.swift against a real `creditmeter run` on
127.0.0.1, whose [[source]] tails CDR_FILE and whose plan charges 1 credit per billed second
(`*,60,0,1,1`), so a 76 s call takes 76 credits. Exits 0 when every step held; otherwise prints
the step that failed and exits 1. Screenshots go to SHOTS (the Clients page, the Create Client page,
the Recharge dialog and the portal).

    console_walk.py BASE_URL ADMIN_TOKEN CDR_FILE SHOTS_DIR
"""
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN, CDR_FILE, SHOTS = sys.argv[1:5]
USER = "ann.lee"
PASSWORD = "Str0ng!pass"
LIVE_SECONDS = 2.0  # a charge must reach the open page this fast, without a reload

step_name = "start"


def step(name):
    global step_name
    step_name = name
    print("step:", name, flush=True)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1150",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def row(d, username):
    return d.find_element(By.CSS_SELECTOR, 'tr.client[data-username="%s"]' % username)


def meter(d, username):
    bar = row(d, username).find_element(By.CSS_SELECTOR, '[role="meter"]')
    text = row(d, username).find_element(By.CSS_SELECTOR, ".meter-text").text
    return text, bar.get_attribute("data-level"), bar.get_attribute("data-color"), bar.get_attribute("aria-valuenow")


def wait(d, seconds, what, condition):
    try:
        # A page that is being replaced (after a form's POST) drops the elements it had: look again.
        WebDriverWait(d, seconds, poll_frequency=0.05,
                      ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(lambda _: condition())
    except TimeoutException:
        raise AssertionError("not within %.1f s: %s" % (seconds, what))


n_cdr = 0


def append_call(billsec):
    """One answered call of ann.lee, billed `billsec` seconds, appended to the tailed Master.csv."""
    global n_cdr
    n_cdr += 1
    uid = "1793500000.%d" % n_cdr
    line = ('"%s","1001","+4420%06d","from-internal","""Ann Lee"" <1001>","PJSIP/1001-%08d","PJSIP/trunk-%08d",'
            '"Dial","PJSIP/+44@trunk,60,tT","2026-11-01 10:%02d:00","2026-11-01 10:%02d:05","2026-11-01 10:%02d:%02d",'
            '%d,%d,"ANSWERED","DOCUMENTATION","%s","","","%s",%d\n') % (
        USER, n_cdr, n_cdr, n_cdr, n_cdr, n_cdr, n_cdr + 1, 5 + billsec % 50, billsec + 5, billsec, uid, uid, n_cdr)
    with open(CDR_FILE, "a") as f:
        f.write(line)


def live_move(d, billsec, level, color, display):
    append_call(billsec)
    started = time.monotonic()
    wait(d, LIVE_SECONDS, "meter of %s to %s (%s)" % (USER, level, display),
         lambda: meter(d, USER)[:3] == (display, level, color))
    print("  %s after %.2f s" % (level, time.monotonic() - started), flush=True)


def main():
    d = browser()
    try:
        step("sign in with the admin token")
        d.get(BASE + "/console/")
        label = d.find_element(By.CSS_SELECTOR, 'label[for="token"]')
        check(label.text == "Admin token", "sign-in label is %r" % label.text)
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
        wait(d, 10, "the Clients page", lambda: "New Client" in d.page_source)
        check(any(b.text == "Sign out" for b in d.find_elements(By.TAG_NAME, "button")), "no Sign out button")

        step("New Client: a weak password shows unmet conditions, and the server refuses it")
        d.find_element(By.LINK_TEXT, "New Client").click()
        wait(d, 10, "the Create Client page", lambda: d.find_elements(By.ID, "password"))
        for label in ["Username", "First Name", "Last Name", "Email Address", "Phone Number", "Country", "State / Region",
                      "City", "Zip / Postal Code", "Address Line 1", "Address Line 2", "Company", "Role", "Password",
                      "Confirm Password"]:
            check(d.find_elements(By.XPATH, '//label[text()="%s"]' % label), "no label %r" % label)
        values = {"username": USER, "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
                  "phone": "+44 20 7946 0000", "country": "United Kingdom", "city": "London", "company": "Lee & Co"}
        for name, value in values.items():
            d.find_element(By.ID, name).send_keys(value)
        d.find_element(By.ID, "password").send_keys("weakpass")
        d.find_element(By.ID, "password_confirmation").send_keys("weakpass")

        def met(cond):
            return d.find_element(By.CSS_SELECTOR, 'li[data-condition="%s"]' % cond).get_attribute("data-met")
        wait(d, 5, "the lowercase and match conditions ticked", lambda: met("lowercase") == "true" and met("match") == "true")
        unmet = [c for c in ("digit", "uppercase", "special") if met(c) != "true"]
        check(unmet == ["digit", "uppercase", "special"], "unmet conditions %r" % unmet)
        d.save_screenshot(os.path.join(SHOTS, "console-create-client.png"))
        d.find_element(By.XPATH, '//button[text()="Create"]').click()
        wait(d, 10, "the server's refusal", lambda: d.find_elements(By.CSS_SELECTOR, '#password[aria-invalid="true"]'))
        check("Password must contain at least one digit" in d.find_element(By.ID, "password-error").text, "no digit error")
        check(d.find_element(By.ID, "company").get_attribute("value") == "Lee & Co", "typed company lost")
        check(d.find_element(By.ID, "password").get_attribute("value") == "", "the password was sent back")

        step("then a good password creates the client at 0 | 0 | 0")
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.ID, "password_confirmation").send_keys(PASSWORD)
        wait(d, 5, "every condition ticked", lambda: all(
            li.get_attribute("data-met") == "true" for li in d.find_elements(By.CSS_SELECTOR, "ul.conditions li")))
        d.find_element(By.XPATH, '//button[text()="Create"]').click()
        wait(d, 10, "the new row", lambda: d.find_elements(By.CSS_SELECTOR, 'tr.client[data-username="%s"]' % USER))
        check(meter(d, USER) == ("0 | 0 | 0", "exhausted", "red", "0"), "new meter %r" % (meter(d, USER),))
        check("Active" in row(d, USER).text and "Lee & Co" in row(d, USER).text, "row %r" % row(d, USER).text)

        step("Recharge Credits 100 gives 100 | 0 | 100, ok")
        ActionChains(d).move_to_element(row(d, USER)).perform()
        button = row(d, USER).find_element(By.XPATH, './/button[text()="Recharge Credits"]')
        wait(d, 5, "Recharge Credits shown on hover", button.is_displayed)
        button.click()
        dialog = d.find_element(By.ID, "recharge-dialog")
        wait(d, 5, "the Recharge dialog", dialog.is_displayed)
        check(dialog.find_element(By.CSS_SELECTOR, 'label[for="credits"]').text == "Credits", "dialog label")
        d.find_element(By.ID, "credits").send_keys("100")
        d.save_screenshot(os.path.join(SHOTS, "console-recharge-dialog.png"))
        dialog.find_element(By.XPATH, './/button[text()="Recharge"]').click()
        wait(d, 10, "100 | 0 | 100", lambda: meter(d, USER) == ("100 | 0 | 100", "ok", "primary", "100"))

        step("CDRs appended to the tailed file move the bar without a reload")
        marker = d.execute_script("window.__noReload = 1; return window.__noReload;")
        live_move(d, 76, "low", "orange", "24 | 76 | 100")
        ActionChains(d).move_to_element(row(d, USER)).perform()  # the hover shows Recharge Credits
        d.save_screenshot(os.path.join(SHOTS, "console-clients.png"))
        live_move(d, 15, "critical", "red", "9 | 91 | 100")
        live_move(d, 9, "exhausted", "red", "0 | 100 | 100")
        check(d.execute_script("return window.__noReload;") == marker, "the page reloaded")

        step("a double click on Recharge recharges once")
        ActionChains(d).move_to_element(row(d, USER)).perform()
        row(d, USER).find_element(By.XPATH, './/button[text()="Recharge Credits"]').click()
        wait(d, 5, "the Recharge dialog", d.find_element(By.ID, "recharge-dialog").is_displayed)
        d.find_element(By.ID, "credits").send_keys("50")
        # Whether a real double click's second press reaches the server depends on how fast the first
        # answer replaces the page, so the form is also posted once by script with the same key: the
        # server sees at least two posts of one key every run, and must recharge once.
        posted = d.execute_async_script("""
            var done = arguments[arguments.length - 1];
            var form = document.querySelector('#recharge-dialog form');
            fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form)),
                                credentials: 'same-origin', redirect: 'manual'})
              .then(function (r) { done(r.type === 'opaqueredirect' ? 303 : r.status); })
              .catch(function (e) { done(String(e)); });
        """)
        check(posted in (200, 303), "the scripted post of the Recharge form answered %r" % (posted,))
        submit = d.find_element(By.XPATH, '//dialog//button[text()="Recharge"]')
        try:
            ActionChains(d).double_click(submit).perform()
        except (StaleElementReferenceException, WebDriverException) as e:
            # The first press's answer replaced the page before the second press: that is a user's
            # double click too, with the second press landing on the new page.
            if "does not belong to the document" not in str(e) and not isinstance(e, StaleElementReferenceException):
                raise
        wait(d, 10, "50 | 100 | 150", lambda: meter(d, USER)[0] == "50 | 100 | 150")
        # The portal's list of recharges (below), long after both posts were answered, shows one 50.

        step("Edit changes the company")
        row(d, USER).find_element(By.CSS_SELECTOR, "details.menu summary").click()
        row(d, USER).find_element(By.LINK_TEXT, "Edit").click()
        wait(d, 10, "the Edit form", lambda: d.find_elements(By.ID, "company"))
        company = d.find_element(By.ID, "company")
        company.clear()
        company.send_keys("Lee Holdings")
        d.find_element(By.XPATH, '//button[text()="Save"]').click()
        wait(d, 10, "the new company", lambda: d.find_elements(By.CSS_SELECTOR, 'tr.client[data-username="%s"]' % USER)
             and "Lee Holdings" in row(d, USER).text)

        step("the portal shows the client's meter and last calls")
        d.get(BASE + "/portal/")
        d.find_element(By.ID, "username").send_keys(USER)
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
        wait(d, 10, "the portal page", lambda: d.find_elements(By.CSS_SELECTOR, '[role="meter"]'))
        bar = d.find_element(By.CSS_SELECTOR, '[role="meter"]')
        check(bar.get_attribute("data-level") == "ok" and bar.get_attribute("aria-valuenow") == "33",
              "portal bar %s %s" % (bar.get_attribute("data-level"), bar.get_attribute("aria-valuenow")))
        check(d.find_element(By.CSS_SELECTOR, ".meter-text").text == "50 | 100 | 150", "portal meter text")
        calls = d.find_elements(By.CSS_SELECTOR, "table.calls tr.call")
        check(len(calls) == 3, "%d calls listed" % len(calls))
        first = [td.text for td in calls[0].find_elements(By.TAG_NAME, "td")]
        check(first[1] == "+4420000003" and first[2] == "0:09" and first[3] == "9", "newest call %r" % first)
        recharges = [[td.text for td in r.find_elements(By.TAG_NAME, "td")][1]
                     for r in d.find_elements(By.CSS_SELECTOR, "table.recharges tbody tr")]
        check(recharges == ["50", "100"], "recharges listed %r (a double click must recharge once)" % recharges)
        d.save_screenshot(os.path.join(SHOTS, "console-portal.png"))
        d.find_element(By.XPATH, '//button[text()="Sign out"]').click()
        wait(d, 10, "the portal's sign-in form after Sign out", lambda: d.find_elements(By.ID, "username"))

        step("Disable shows its warning; the row reads Disabled; the portal refuses the client")
        d.get(BASE + "/console/")
        wait(d, 10, "the Clients page", lambda: d.find_elements(By.CSS_SELECTOR, 'tr.client[data-username="%s"]' % USER))
        row(d, USER).find_element(By.CSS_SELECTOR, "details.menu summary").click()
        row(d, USER).find_element(By.LINK_TEXT, "Disable").click()
        wait(d, 10, "the warning", lambda: "takes away its console access only" in d.page_source)
        check("beyond recovery" in d.page_source and "deny_disabled" in d.page_source, "warning text")
        d.find_element(By.XPATH, '//button[text()="Disable"]').click()
        wait(d, 10, "the row Disabled", lambda: d.find_elements(By.CSS_SELECTOR, 'tr.client[data-username="%s"]' % USER)
             and "Disabled" in row(d, USER).text)
        d.get(BASE + "/portal/")
        d.find_element(By.ID, "username").send_keys(USER)
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
        wait(d, 10, "the refusal", lambda: "This account is disabled." in d.page_source)
        check(not d.find_elements(By.CSS_SELECTOR, '[role="meter"]'), "a disabled client sees its meter")
        print("browser walk: all steps passed", flush=True)
        return 0
    except Exception as e:  # report the step, keep a screenshot of where it stopped
        print("FAILED at step %r: %s" % (step_name, e), flush=True)
        try:
            where = os.path.join(tempfile.gettempdir(), "console-failure.png")
            d.save_screenshot(where)
            print("screenshot of the failure:", where, flush=True)
        except Exception:
            pass
        return 1
    finally:
        d.quit()


if __name__ == "__main__":
    sys.exit(main())
