import{j as s,T as e}from"./index-C5ChdGh-.js";function t(){return s.jsx(e,{order:2,children:"ResetPassword"})}export{t as default};
