"""What each key cost, for Prometheus: the cost series, for OpenAI and for Anthropic.

With an admin key and ``--cost-interval`` (seconds, 0 off), one process asks each
provider's Admin API for this month's costs and the last 30 days' per key and project (OpenAI: ``/v1/organization/costs`` grouped by ``api_key_id`` and ``project_id``)
or per key and workspace (Anthropic: its Usage and Cost Analytics API,
``/v1/organizations/analytics/cost`` grouped by ``api_key_id`` and ``workspace_id`` in daily
buckets), every page, at start, every interval, and after failures with discovery's
backoff. Each scrape exports, per provider, key and project or workspace:

    orgproxy_cost_month_to_date_usd{provider, api_key_id, api_key_name, project_id, project_name}
    orgproxy_cost_month_to_date_usd{provider, api_key_id, api_key_name, workspace_id, workspace_name}
    orgproxy_cost_last_day_usd{...}          (the last complete UTC day)

and, per provider, ``orgproxy_cost_refresh_timestamp_seconds`` (the last success, 0 before
any) and ``orgproxy_cost_refresh_failures_total``. Dollars are exact decimals until the
exposition writes them (Anthropic's cents divided by 100, exactly).

Each day's cost per key is kept too (not on /metrics): the dashboard charts the last 30.

The modules: ``window`` (which days a refresh asks for), ``openai_costs`` and
``anthropic_costs`` (each API's pages added up), ``figures`` (the series and their days,
bounded, as the state file holds them), ``store`` (that file), ``collector`` (the scrape),
``refresher`` (when to ask), ``budgets`` and ``budget_file`` (``--budgets``: the file, and
the budgets in force), ``overview`` (what the dashboard shows).
"""
