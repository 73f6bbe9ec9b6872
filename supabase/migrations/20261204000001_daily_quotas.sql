-- Daily token quotas: what each user spent per UTC day (in total and per model), the
-- reservations of model calls still running, and per-user limit overrides. The same tables and
-- semantics as the SQLite store's migration 4 (opencode/storage/quota_schema.py).
--
-- A model call reserves tokens first (reserve_tokens: allowed while used + live reservations
-- is under the limit) and settles after it (settle_tokens: the reservation is released and the
-- real usage added). Both are one function call, one transaction, serialised per user and day
-- by the row lock on usage_daily, so concurrent servers never both spend the last tokens.
--
-- Users may read their own rows; only service_role writes (through these functions, and
-- user_limits directly).
--
-- Never edit this file once it has shipped: add a new migration.

create table public.usage_daily (
    user_id uuid not null,
    day date not null,  -- UTC
    input_tokens bigint not null default 0 check (input_tokens >= 0),
    output_tokens bigint not null default 0 check (output_tokens >= 0),
    total_tokens bigint generated always as (input_tokens + output_tokens) stored,
    reserved_tokens bigint not null default 0 check (reserved_tokens >= 0),
    reserved_at timestamptz,  -- the latest reservation; older than the TTL means none is live
    cost double precision not null default 0,
    requests bigint not null default 0,
    updated_at timestamptz not null,
    -- user_id leads: the key also serves the RLS predicate and a user's history.
    primary key (user_id, day)
);

create table public.usage_daily_models (
    user_id uuid not null,
    day date not null,
    model text collate "C" not null,  -- byte order, as in SQLite: ties list the same everywhere
    input_tokens bigint not null default 0 check (input_tokens >= 0),
    output_tokens bigint not null default 0 check (output_tokens >= 0),
    total_tokens bigint generated always as (input_tokens + output_tokens) stored,
    cost double precision not null default 0,
    requests bigint not null default 0,
    updated_at timestamptz not null,
    primary key (user_id, day, model),
    foreign key (user_id, day) references public.usage_daily (user_id, day) on delete cascade
);

create table public.user_limits (
    user_id uuid primary key,
    daily_token_limit bigint not null check (daily_token_limit >= 0),  -- 0 = unlimited
    updated_at timestamptz not null
);

revoke all on table public.usage_daily, public.usage_daily_models, public.user_limits
    from anon, authenticated;
grant select, insert, update, delete on table public.usage_daily, public.usage_daily_models,
    public.user_limits to service_role;
grant select on table public.usage_daily, public.usage_daily_models, public.user_limits
    to authenticated;

alter table public.usage_daily enable row level security;
alter table public.usage_daily_models enable row level security;
alter table public.user_limits enable row level security;

create policy "users read their daily usage" on public.usage_daily
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "users read their daily usage by model" on public.usage_daily_models
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "users read their limit" on public.user_limits
    for select to authenticated using ((select auth.uid()) = user_id);

-- Before a model call: reserve p_tokens for (p_user_id, p_day) if the day's limit allows it.
-- The limit is the user's user_limits override, else p_default_limit; 0 means unlimited.
-- Allowed iff the limit is 0 or used + live reservations < limit. Reservations whose latest
-- reservation is older than p_reservation_ttl (their steps died unsettled) are reset to 0.
-- Returns the decision with the figures after it; p_now is the caller's clock, as for every
-- other timestamp the stores write.
create function public.reserve_tokens(
    p_user_id uuid,
    p_day date,
    p_tokens bigint,
    p_default_limit bigint,
    p_now timestamptz,
    p_reservation_ttl interval
) returns table (allowed boolean, used bigint, reserved bigint, daily_limit bigint)
language plpgsql security definer set search_path = ''
as $$
declare
    v_stored bigint;
    v_reserved_at timestamptz;
begin
    daily_limit := coalesce(
        (select l.daily_token_limit from public.user_limits l where l.user_id = p_user_id),
        p_default_limit
    );
    insert into public.usage_daily (user_id, day, updated_at)
    values (p_user_id, p_day, p_now)
    on conflict (user_id, day) do nothing;
    -- The row lock makes concurrent reservations of one user and day take turns, and under
    -- READ COMMITTED each one reads the row as the previous one committed it.
    select u.total_tokens, u.reserved_tokens, u.reserved_at
      into used, v_stored, v_reserved_at
      from public.usage_daily u
     where u.user_id = p_user_id and u.day = p_day
       for update;
    reserved := case when v_reserved_at >= p_now - p_reservation_ttl then v_stored else 0 end;
    allowed := daily_limit = 0 or used + reserved < daily_limit;
    if allowed then
        reserved := reserved + p_tokens;
    end if;
    if allowed or reserved <> v_stored then
        update public.usage_daily u
           set reserved_tokens = reserved,
               reserved_at = case when allowed then p_now else u.reserved_at end,
               updated_at = p_now
         where u.user_id = p_user_id and u.day = p_day;
    end if;
    return next;
end;
$$;

-- After a model call: release p_reserved (never below 0) and add the call's tokens and cost
-- to the day's totals and its per-model row, counting one request. p_reserved = 0 records a
-- call that reserved nothing. Each upsert locks its row, so concurrent settles add up exactly.
create function public.settle_tokens(
    p_user_id uuid,
    p_day date,
    p_reserved bigint,
    p_model text,
    p_input_tokens bigint,
    p_output_tokens bigint,
    p_cost double precision,
    p_now timestamptz
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.usage_daily as u (
        user_id, day, input_tokens, output_tokens, cost, requests, updated_at
    ) values (p_user_id, p_day, p_input_tokens, p_output_tokens, p_cost, 1, p_now)
    on conflict (user_id, day) do update
       set reserved_tokens = greatest(u.reserved_tokens - p_reserved, 0),
           input_tokens = u.input_tokens + excluded.input_tokens,
           output_tokens = u.output_tokens + excluded.output_tokens,
           cost = u.cost + excluded.cost,
           requests = u.requests + 1,
           updated_at = excluded.updated_at;
    insert into public.usage_daily_models as m (
        user_id, day, model, input_tokens, output_tokens, cost, requests, updated_at
    ) values (p_user_id, p_day, p_model, p_input_tokens, p_output_tokens, p_cost, 1, p_now)
    on conflict (user_id, day, model) do update
       set input_tokens = m.input_tokens + excluded.input_tokens,
           output_tokens = m.output_tokens + excluded.output_tokens,
           cost = m.cost + excluded.cost,
           requests = m.requests + 1,
           updated_at = excluded.updated_at;
end;
$$;

-- They write any user's figures: only service_role may call them.
revoke execute on function
    public.reserve_tokens(uuid, date, bigint, bigint, timestamptz, interval),
    public.settle_tokens(uuid, date, bigint, text, bigint, bigint, double precision, timestamptz)
    from public, anon, authenticated;
grant execute on function
    public.reserve_tokens(uuid, date, bigint, bigint, timestamptz, interval),
    public.settle_tokens(uuid, date, bigint, text, bigint, bigint, double precision, timestamptz)
    to service_role;
