-- NEVER APPLY THIS TO A REAL SUPABASE PROJECT: it stands in for what Supabase already has.
--
-- The few roles, schemas and functions that supabase/migrations/*.sql refer to, so that the
-- migrations also apply to a vanilla PostgreSQL (tests, direct-PG mode). PostgresStore applies
-- it only when auth.uid() does not exist, in the migrations' transaction.
--
-- Roles belong to the whole cluster, so another database's migration may be creating them at
-- the same moment: losing that race is fine.
do $$
declare
    v_role text;
begin
    foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
            begin
                execute pg_catalog.format(
                    'create role %I nologin noinherit%s',
                    v_role,
                    case when v_role = 'service_role' then ' bypassrls' else '' end
                );
            exception when duplicate_object or unique_violation then
                null;  -- created concurrently by another database's migration
            end;
        end if;
    end loop;
end
$$;

create schema if not exists auth;
create table if not exists auth.users (id uuid primary key, email text);

-- As in Supabase: the caller's user id and role, from the claims PostgREST sets per request.
create or replace function auth.uid() returns uuid
language sql stable
as $$
    select nullif(
        coalesce(
            current_setting('request.jwt.claim.sub', true),
            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        ),
        ''
    )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
    select nullif(
        coalesce(
            current_setting('request.jwt.claim.role', true),
            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        ),
        ''
    )::text
$$;

grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
