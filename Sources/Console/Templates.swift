/// The pages' Mustache templates. `{{name}}` escapes (`<`, `>`, `&`, `"`, `'`); the only unescaped
/// insertion is the layout's `{{{body}}}`, which is another template's already escaped output.
enum Templates {
    static let all: [String: String] = [
        "layout": layout, "signin": signin, "clients": clients, "form": form, "disable": disable, "portal": portal,
        "message": message,
    ]

    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{page}} · {{title}}</title>
        <link rel="stylesheet" href="/console/assets/style.css">
        {{#hasCsrf}}<meta name="csrf" content="{{csrf}}">{{/hasCsrf}}
        <script src="/console/assets/app.js" defer></script>
        </head>
        <body{{#hasMeters}} data-meters="{{meters}}"{{/hasMeters}}>
        <header class="top">
        {{#hasLogo}}<img src="/console/assets/logo" alt="">{{/hasLogo}}<span class="brand">{{title}}</span>
        {{#hasSignout}}<span>{{who}}</span><form method="post" action="{{signout}}"><input type="hidden" name="csrf" value="{{csrf}}"><button class="plain" type="submit">Sign out</button></form>{{/hasSignout}}
        </header>
        <main>
        {{{body}}}
        </main>
        </body>
        </html>

        """

    static let signin = """
        <div class="signin card">
        <h1>{{heading}}</h1>
        {{#hasAlert}}<p class="alert" role="alert">{{alert}}</p>{{/hasAlert}}
        <form method="post" action="{{action}}">
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#operator}}<label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required>{{/operator}}
        {{^operator}}<label for="username">Username</label>
        <input id="username" name="username" value="{{username}}" autocomplete="username" required>
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>{{/operator}}
        <button type="submit">Sign in</button>
        </form>
        </div>
        """

    static let clients = """
        <div class="toolbar">
        <h1>Clients</h1>
        <form method="get" action="/console/" role="search">
        <label for="q">Search</label>
        <input id="q" name="q" type="search" value="{{q}}" placeholder="Username, name or email">
        <button class="plain" type="submit">Search</button>
        </form>
        <a class="btn" href="/console/clients/new">New Client</a>
        </div>
        {{#hasNotice}}<p class="notice" role="status">{{notice}}</p>{{/hasNotice}}
        {{#hasAlert}}<p class="alert" role="alert">{{alert}}</p>{{/hasAlert}}
        <table>
        <thead><tr><th>Username</th><th>Name</th><th>Company</th><th>Status</th><th>Available | Used | Assigned</th><th></th></tr></thead>
        <tbody>
        {{#clients}}
        <tr class="client" data-username="{{username}}">
        <td>{{username}}</td>
        <td>{{name}}</td>
        <td>{{company}}</td>
        <td><span data-status-for="{{username}}" class="status-{{status}}">{{statusLabel}}</span></td>
        <td data-meter-for="{{username}}">
        <div class="meter-text">{{display}}</div>
        <div class="bar" role="meter" aria-label="Credits of {{username}}" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{{bar}}" aria-valuetext="{{display}}" data-level="{{level}}" data-color="{{color}}"><div class="fill w{{bar}}"></div></div>
        </td>
        <td class="actions">
        <button type="button" class="recharge plain" data-username="{{username}}" data-action="/console/clients/{{username}}/recharge">Recharge Credits</button>
        <details class="menu"><summary aria-label="Actions for {{username}}">⋮</summary><div class="items">
        <a href="/console/clients/{{username}}/edit">Edit</a>
        {{#active}}<a href="/console/clients/{{username}}/disable">Disable</a>{{/active}}
        {{^active}}<form method="post" action="/console/clients/{{username}}/enable"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Enable</button></form>{{/active}}
        </div></details>
        </td>
        </tr>
        {{/clients}}
        {{^clients}}<tr><td colspan="6">No clients{{#hasQuery}} match “{{q}}”{{/hasQuery}}.</td></tr>{{/clients}}
        </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
        <span>{{range}} of {{total}}</span>
        {{#hasPrevious}}<a class="btn plain" href="{{previous}}">Previous</a>{{/hasPrevious}}
        {{#hasNext}}<a class="btn plain" href="{{next}}">Next</a>{{/hasNext}}
        </nav>
        <dialog id="recharge-dialog" aria-labelledby="recharge-title">
        <form method="post" action="/console/">
        <h2 id="recharge-title">Recharge Credits</h2>
        <p>Client: <strong class="who"></strong></p>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="idempotency_key" value="">
        <input type="hidden" name="return" value="{{here}}">
        <label for="credits">Credits</label>
        <input id="credits" name="credits" inputmode="decimal" autocomplete="off" required>
        <div><button type="submit">Recharge</button> <button type="button" class="plain cancel">Cancel</button></div>
        </form>
        </dialog>
        """

    static let form = """
        <h1>{{heading}}</h1>
        {{#general}}<p class="alert" role="alert">{{.}}</p>{{/general}}
        <form class="fields" method="post" action="{{action}}" novalidate>
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#fields}}
        <div class="field">
        <label for="{{name}}">{{label}}</label>
        <input id="{{name}}" name="{{name}}" type="{{type}}" value="{{value}}" autocomplete="{{autocomplete}}"{{#readonly}} readonly{{/readonly}}{{#invalid}} aria-invalid="true" aria-describedby="{{name}}-error"{{/invalid}}>
        {{#invalid}}<span class="error" id="{{name}}-error">{{error}}</span>{{/invalid}}
        {{#hasConditions}}<ul class="conditions" data-check="/console/password-check" aria-live="polite">{{#conditions}}<li data-condition="{{id}}" data-met="false">{{label}}</li>{{/conditions}}</ul>{{/hasConditions}}
        </div>
        {{/fields}}
        <div class="wide"><button type="submit">{{submit}}</button> <a class="btn plain" href="/console/">Cancel</a></div>
        </form>
        """

    static let message = """
        <h1>{{heading}}</h1>
        <p>{{text}}</p>
        <p><a class="btn plain" href="/console/">Back to Clients</a></p>
        """

    static let disable = """
        <h1>Disable {{username}}?</h1>
        <div class="card">
        <p>Disabling <strong>{{username}}</strong> ({{name}}) takes away its console access only: it can no longer sign in to the client portal or use the self-service API.</p>
        <p>{{calls}}</p>
        <p><strong>A client disabled for more than {{days}} days is deleted with all its data, beyond recovery.</strong> Enable it again before then to keep it.</p>
        <form method="post" action="/console/clients/{{username}}/disable">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button class="danger" type="submit">Disable</button> <a class="btn plain" href="/console/">Cancel</a>
        </form>
        </div>
        """

    static let portal = """
        <h1>{{name}}</h1>
        <div class="card" data-meter-for="{{username}}">
        <div>Available | Used | Assigned</div>
        <div class="big meter-text">{{display}}</div>
        <div class="bar" role="meter" aria-label="Your credits" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{{bar}}" aria-valuetext="{{display}}" data-level="{{level}}" data-color="{{color}}"><div class="fill w{{bar}}"></div></div>
        </div>
        <h2>Last calls</h2>
        <table class="calls">
        <thead><tr><th>Time</th><th>Destination</th><th>Duration</th><th>Cost</th></tr></thead>
        <tbody>
        {{#calls}}<tr class="call"><td>{{time}}</td><td>{{destination}}</td><td>{{duration}}</td><td>{{cost}}</td></tr>{{/calls}}
        {{^calls}}<tr><td colspan="4">No calls yet.</td></tr>{{/calls}}
        </tbody>
        </table>
        <h2>Recharges</h2>
        <table class="recharges">
        <thead><tr><th>Time</th><th>Credits</th></tr></thead>
        <tbody>
        {{#recharges}}<tr><td>{{time}}</td><td>{{amount}}</td></tr>{{/recharges}}
        {{^recharges}}<tr><td colspan="2">No recharges yet.</td></tr>{{/recharges}}
        </tbody>
        </table>
        """
}
